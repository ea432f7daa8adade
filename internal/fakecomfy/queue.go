package fakecomfy

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
)

// queueItem is one accepted prompt, pending or running.
type queueItem struct {
	number   float64
	seq      int64 // tie-break: earlier first
	promptID string
	raw      json.RawMessage
	graph    map[string]Node
	outputs  []string
	extra    map[string]any
	clientID string

	interrupt     chan struct{}
	interruptOnce sync.Once
	node          string   // node running now; guarded by Server.mu
	messages      [][2]any // status messages for history; guarded by Server.mu
}

// tuple returns the item as ComfyUI lists it: [number, prompt_id, prompt,
// extra_data, outputs].
func (it *queueItem) tuple() []any {
	return []any{it.number, it.promptID, it.raw, it.extra, it.outputs}
}

// stop asks the running item to stop at its next step; safe to call twice.
func (it *queueItem) stop() {
	it.interruptOnce.Do(func() { close(it.interrupt) })
}

// queueRemainingLocked returns pending plus running prompts. s.mu is held.
func (s *Server) queueRemainingLocked() int {
	n := len(s.pending)
	if s.running != nil {
		n++
	}
	return n
}

// popLocked removes and returns the pending item to run next (lowest
// number, then earliest), or nil. s.mu is held.
func (s *Server) popLocked() *queueItem {
	if len(s.pending) == 0 {
		return nil
	}
	best := 0
	for i, it := range s.pending {
		b := s.pending[best]
		if it.number < b.number || (it.number == b.number && it.seq < b.seq) {
			best = i
		}
	}
	it := s.pending[best]
	s.pending = slices.Delete(s.pending, best, best+1)
	return it
}

// handleGetQueue answers GET /queue.
func (s *Server) handleGetQueue(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	running := [][]any{}
	if s.running != nil {
		running = append(running, s.running.tuple())
	}
	pending := [][]any{}
	for _, it := range s.pending {
		pending = append(pending, it.tuple())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"queue_running": running, "queue_pending": pending})
}

// handleGetPrompt answers GET /prompt with the queue length.
func (s *Server) handleGetPrompt(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	n := s.queueRemainingLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"exec_info": map[string]any{"queue_remaining": n}})
}

// handlePostQueue answers POST /queue: {"clear": true} drops every pending
// prompt, {"delete": [ids]} drops those pending; running prompts stay.
func (s *Server) handlePostQueue(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeServerError(w)
		return
	}
	s.mu.Lock()
	before := len(s.pending)
	if req.Clear {
		s.pending = nil
	}
	if len(req.Delete) > 0 {
		s.pending = slices.DeleteFunc(s.pending, func(it *queueItem) bool {
			return slices.Contains(req.Delete, it.promptID)
		})
	}
	if req.Clear || len(s.pending) != before {
		s.broadcastStatusLocked()
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}
