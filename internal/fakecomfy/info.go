package fakecomfy

import (
	"net/http"
	"os"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// indexHTML is the page GET / answers with.
const indexHTML = `<!DOCTYPE html>
<html><head><title>ComfyUI</title></head>
<body><h1>ComfyUI (fake)</h1><p>gpulock fakecomfy test server.</p></body></html>
`

// handleIndex answers GET / with a small HTML page.
func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(indexHTML))
}

// handleSystemStats answers GET /system_stats with the simulated GPU's memory.
func (s *Server) handleSystemStats(w http.ResponseWriter, _ *http.Request) {
	total, free := simgpu.DefaultTotalVRAM, simgpu.DefaultTotalVRAM
	if s.cfg.GPU != nil {
		if st, err := s.cfg.GPU.Stats(); err == nil {
			total, free = st.VRAMTotal, st.VRAMFree
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"system": map[string]any{
			"os": "posix", "ram_total": 64 * simgpu.GiB, "ram_free": 48 * simgpu.GiB,
			"comfyui_version": "0.3.60-fake", "python_version": "3.12.3", "pytorch_version": "2.8.0+cu128",
			"embedded_python": false, "argv": []string{"main.py", "--pid", itoa(os.Getpid())},
		},
		"devices": []map[string]any{{
			"name": "cuda:0 NVIDIA GeForce RTX 4090 (fake) : cudaMallocAsync", "type": "cuda", "index": 0,
			"vram_total": total, "vram_free": free, "torch_vram_total": total, "torch_vram_free": free,
		}},
	})
}

// handleObjectInfo answers GET /object_info[/{class}] with the node vocabulary.
func (s *Server) handleObjectInfo(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{}
	for name, c := range nodeClasses {
		if want := r.PathValue("class"); want != "" && want != name {
			continue
		}
		required := map[string]any{}
		for _, in := range c.required {
			required[in] = []any{"*"}
		}
		outputs := c.output
		if outputs == nil {
			outputs = []string{}
		}
		out[name] = map[string]any{
			"input": map[string]any{"required": required}, "output": outputs, "output_is_list": make([]bool, len(outputs)),
			"output_name": outputs, "name": name, "display_name": name, "description": "", "category": c.category,
			"output_node": c.isOutput, "python_module": "nodes",
		}
	}
	writeJSON(w, http.StatusOK, out)
}
