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
	// Detail is "full" or "masked": what this caller is shown (detail.go).
	// A masked status hides the upstream, cuts command lines to the
	// program's name and hashes other clients' request ids.
	Detail string `json:"detail"`
	// Service, Profile and Upstream describe the shim.
	Service  string `json:"service"`
	Profile  string `json:"profile"`
	Upstream string `json:"upstream"`
	// Queue lists the GPU requests in this shim's line, in the order fair
	// turns will most likely serve them. A request that sent an
	// X-Request-Id header finds itself by it (in a masked status, by
	// sending the same header with its GET).
	Queue []QueueEntry `json:"queue"`
	// Clients counts the waiting requests of each client.
	Clients map[string]int `json:"clients"`
	// Fair says whether turns go round-robin between clients.
	Fair bool `json:"fair"`
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
	// Client is whose request it is; Priority its level now (with aging).
	Client   string `json:"client"`
	Priority string `json:"priority"`
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
		Clients:  map[string]int{},
		Fair:     !s.cfg.Turns.ArrivalOrder,
		Requests: map[string]float64{},
	}}
	now := time.Now()
	places := s.line.snapshot()
	fairOrder(places, now, s.cfg.Turns.ArrivalOrder)
	for i, p := range places {
		st.Shim.Queue = append(st.Shim.Queue, QueueEntry{RequestID: p.requestID, Route: p.route, Position: i + 1,
			WaitedSeconds: now.Sub(p.since).Seconds(), Client: p.turn.Client,
			Priority: p.turn.Level(p.since, now, gpulock.DefaultAging).String()})
		st.Shim.Clients[p.turn.Client]++
	}
	if s.watch != nil {
		st.Shim.HeldPrompts = s.watch.count()
	}
	s.page.fill(&st)
	st.Shim.Requests = s.metrics.requestCounts()
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
	v := s.viewFor(r)
	st.Status, st.Shim = v.lockStatus(st.Status), v.shimStatus(st.Shim)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}
