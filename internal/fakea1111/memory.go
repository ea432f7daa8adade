package fakea1111

import (
	"net/http"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// handleMemory answers GET /sdapi/v1/memory with the simulated GPU's memory.
func (s *Server) handleMemory(w http.ResponseWriter, _ *http.Request) {
	total, used, ooms := simgpu.DefaultTotalVRAM, int64(0), int64(0)
	if s.cfg.GPU != nil {
		if st, err := s.cfg.GPU.Stats(); err == nil {
			total, used, ooms = st.VRAMTotal, st.VRAMUsed, st.OOMs
		}
	}
	ram := 64 * simgpu.GiB
	writeJSON(w, http.StatusOK, map[string]any{
		"ram": map[string]any{"free": ram / 2, "used": ram / 2, "total": ram},
		"cuda": map[string]any{
			"system":    map[string]any{"free": total - used, "used": used, "total": total},
			"active":    map[string]any{"current": used, "peak": used},
			"allocated": map[string]any{"current": used, "peak": used},
			"reserved":  map[string]any{"current": used, "peak": used},
			"inactive":  map[string]any{"current": 0, "peak": 0},
			"events":    map[string]any{"retries": 0, "oom": ooms},
		},
	})
}
