package fakea1111

import (
	"net/http"
	"time"
)

// handleInterrupt answers POST /sdapi/v1/interrupt (and skip): the running
// job stops at its next step and still answers 200 with an image.
func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	s.Interrupt()
	writeJSON(w, http.StatusOK, map[string]any{})
}

// Interrupt stops the running job at its next step, if one runs, and
// reports whether one did.
func (s *Server) Interrupt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.Interrupted = true
	if s.current == nil {
		return false
	}
	s.current.stop()
	return true
}

// handleUnload answers POST /sdapi/v1/unload-checkpoint: the weights leave
// the GPU at once (no queue lock); a generation running now fails with 500
// and the next job reloads the checkpoint first.
func (s *Server) handleUnload(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.loaded = false
	if s.current != nil {
		s.current.breakJob()
	}
	s.mu.Unlock()
	if s.cfg.GPU != nil {
		if err := s.cfg.GPU.Free(s.cfg.Service); err != nil {
			writeAPIError(w, http.StatusInternalServerError, "RuntimeError", "", err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// handleReload answers POST /sdapi/v1/reload-checkpoint: if unloaded, the
// weights move back to the GPU (ModelLoadDuration, no queue lock) before
// the answer.
func (s *Server) handleReload(w http.ResponseWriter, _ *http.Request) {
	if err := s.load(false); err != nil {
		writeJSON(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// load loads the checkpoint onto the GPU after ModelLoadDuration, unless
// it is loaded already and force is false.
func (s *Server) load(force bool) *apiError {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if loaded && !force {
		return nil
	}
	timer := time.NewTimer(s.cfg.ModelLoadDuration)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-s.quit:
		return &apiError{Error: "RuntimeError", Errors: ErrClosed.Error()}
	}
	if s.cfg.GPU != nil {
		if err := s.cfg.GPU.Load(s.cfg.Service, s.cfg.ModelBytes); err != nil {
			return &apiError{Error: "OutOfMemoryError", Errors: simgpuMessage(err)}
		}
	}
	s.mu.Lock()
	s.loaded = true
	s.counters.ModelLoads++
	s.mu.Unlock()
	return nil
}
