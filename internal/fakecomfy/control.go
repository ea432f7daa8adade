package fakecomfy

import (
	"encoding/json"
	"io"
	"net/http"
)

// handleInterrupt answers POST /interrupt at once: an empty body (or one
// without prompt_id) interrupts whatever runs; {"prompt_id": X} only if X
// runs. Nothing happens while idle.
func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PromptID string `json:"prompt_id"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = json.Unmarshal(body, &req) // ComfyUI treats a bad body as empty
	s.Interrupt(req.PromptID)
	w.WriteHeader(http.StatusOK)
}

// Interrupt stops the running prompt at its next step, if promptID is empty
// or names it; it reports whether a prompt was told to stop.
func (s *Server) Interrupt(promptID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.running
	if it == nil || (promptID != "" && it.promptID != promptID) {
		return false
	}
	it.stop()
	return true
}

// handleFree answers POST /free {"unload_models": bool, "free_memory":
// bool} at once. Either flag unloads the model: after the running prompt,
// or at once when idle. Malformed JSON (an empty body too) gives 500.
func (s *Server) handleFree(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UnloadModels bool `json:"unload_models"`
		FreeMemory   bool `json:"free_memory"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeServerError(w)
		return
	}
	if req.UnloadModels || req.FreeMemory {
		s.mu.Lock()
		s.freePending = true
		s.mu.Unlock()
		s.signal()
	}
	w.WriteHeader(http.StatusOK)
}
