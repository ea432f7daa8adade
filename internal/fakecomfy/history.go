package fakecomfy

import (
	"net/http"
	"slices"
	"strconv"
)

// maxHistory is how many finished prompts are kept, as in ComfyUI.
const maxHistory = 10000

// historyEntry is one finished prompt in GET /history.
type historyEntry struct {
	Prompt  []any          `json:"prompt"`
	Outputs map[string]any `json:"outputs"`
	Status  historyStatus  `json:"status"`
	Meta    map[string]any `json:"meta"`
}

// historyStatus is a finished prompt's status.
type historyStatus struct {
	StatusStr string   `json:"status_str"`
	Completed bool     `json:"completed"`
	Messages  [][2]any `json:"messages"`
}

// addHistoryLocked records a finished prompt. s.mu is held.
func (s *Server) addHistoryLocked(it *queueItem, success bool, outputs map[string]any) {
	st := historyStatus{StatusStr: "success", Completed: success, Messages: slices.Clone(it.messages)}
	if !success {
		st.StatusStr = "error"
	}
	meta := map[string]any{}
	for id := range outputs {
		meta[id] = map[string]any{"node_id": id, "display_node": id, "parent_node": nil, "real_node_id": id}
	}
	if _, ok := s.history[it.promptID]; !ok {
		s.historyIDs = append(s.historyIDs, it.promptID)
	}
	s.history[it.promptID] = &historyEntry{Prompt: it.tuple(), Outputs: outputs, Status: st, Meta: meta}
	for len(s.historyIDs) > maxHistory {
		delete(s.history, s.historyIDs[0])
		s.historyIDs = s.historyIDs[1:]
	}
}

// handleGetHistoryItem answers GET /history/{id}: {} until the prompt is
// done, then {id: entry}.
func (s *Server) handleGetHistoryItem(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	if e, ok := s.history[id]; ok {
		out[id] = e
	}
	writeJSON(w, http.StatusOK, out)
}

// handleGetHistory answers GET /history[?max_items=N&offset=M] (newest
// max_items when given).
func (s *Server) handleGetHistory(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.historyIDs
	if off, err := strconv.Atoi(r.URL.Query().Get("offset")); err == nil && off > 0 {
		ids = ids[min(off, len(ids)):]
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("max_items")); err == nil && n >= 0 && n < len(ids) {
		ids = ids[len(ids)-n:]
	}
	out := map[string]any{}
	for _, id := range ids {
		out[id] = s.history[id]
	}
	writeJSON(w, http.StatusOK, out)
}

// handlePostHistory answers POST /history: {"clear": true} or {"delete": [ids]}.
func (s *Server) handlePostHistory(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeServerError(w)
		return
	}
	s.mu.Lock()
	if req.Clear {
		s.history, s.historyIDs = map[string]*historyEntry{}, nil
	}
	for _, id := range req.Delete {
		delete(s.history, id)
		s.historyIDs = slices.DeleteFunc(s.historyIDs, func(h string) bool { return h == id })
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}
