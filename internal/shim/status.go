package shim

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/statuspage"
)

// Status is what /gpulock/status serves: the GPU's status, in the schema of
// `gpulock status --json` (one object), plus this shim's own part.
type Status struct {
	gpulock.Status
	Shim ShimStatus `json:"shim"`
}

// ShimStatus is one shim's line and counters.
type ShimStatus struct {
	// Service, Profile, Upstream and GPU describe the shim.
	Service  string `json:"service"`
	Profile  string `json:"profile"`
	Upstream string `json:"upstream"`
	// Queue lists the GPU requests in this shim's line, first in line
	// first. A request that sent an X-Request-Id header finds itself by it.
	Queue []QueueEntry `json:"queue"`
	// HeldPrompts counts ComfyUI prompts forwarded and not finished yet.
	HeldPrompts int `json:"held_prompts"`
	// Requests counts GPU requests by outcome since the shim started.
	Requests map[string]float64 `json:"requests"`
	// Live is what the status page shows beyond the above (page.go).
	statuspage.Live
}

// QueueEntry is one request in the shim's line.
type QueueEntry struct {
	RequestID     string  `json:"request_id"`
	Route         string  `json:"route"`
	Position      int     `json:"position"`
	WaitedSeconds float64 `json:"waited_seconds"`
	// EstimatedStartSeconds estimates when it gets the GPU (see
	// statuspage.EstimateStart); null before any job finished.
	EstimatedStartSeconds *float64 `json:"estimated_start_seconds"`
}

// status gathers the shim's status.
func (s *Shim) status() (Status, error) {
	gs, err := s.lock.Status()
	if err != nil {
		return Status{}, err
	}
	st := Status{Status: gs, Shim: ShimStatus{
		Service:  s.cfg.Name,
		Profile:  s.cfg.Profile.Name,
		Upstream: s.cfg.Upstream.Redacted(),
		Queue:    []QueueEntry{},
		Requests: map[string]float64{},
	}}
	now := time.Now()
	for i, p := range s.line.snapshot() {
		st.Shim.Queue = append(st.Shim.Queue, QueueEntry{RequestID: p.requestID, Route: p.route, Position: i + 1,
			WaitedSeconds: now.Sub(p.since).Seconds()})
	}
	if s.watch != nil {
		st.Shim.HeldPrompts = s.watch.count()
	}
	s.page.fill(&st)
	families, err := s.metrics.registry.Gather()
	if err != nil {
		return st, err
	}
	for _, f := range families {
		if f.GetName() != "gpulock_shim_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					st.Shim.Requests[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return st, nil
}

func (s *Shim) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "gpulock: "+PathStatus+" answers GET only")
		return
	}
	st, err := s.status()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "status_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}
