package fakecomfy

import (
	"io"
	"net/http"
	"slices"
	"strings"
)

// maxUserFile bounds one user data file or settings body.
const maxUserFile = 16 << 20

// The user's state, as ComfyUI stores it on its machine (a little of it):
// POST/GET /userdata/{file} (the front end's saved workflows, file named
// with %2F for folders), GET /userdata?dir=D (the files under D), and GET
// /settings, GET and POST /settings/{id}. Kept in memory.

// handlePostUserdata stores a user file and answers its path, as ComfyUI.
func (s *Server) handlePostUserdata(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxUserFile))
	if err != nil {
		writeServerError(w)
		return
	}
	file := r.PathValue("file")
	s.mu.Lock()
	if s.userdata == nil {
		s.userdata = map[string][]byte{}
	}
	_, exists := s.userdata[file]
	if exists && r.URL.Query().Get("overwrite") == "false" {
		s.mu.Unlock()
		http.Error(w, "File already exists", http.StatusConflict)
		return
	}
	s.userdata[file] = b
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, file)
}

// handleGetUserdata answers a stored user file, or 404.
func (s *Server) handleGetUserdata(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b, ok := s.userdata[r.PathValue("file")]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

// handleListUserdata answers GET /userdata?dir=D: the files under D,
// relative to it, sorted.
func (s *Server) handleListUserdata(w http.ResponseWriter, r *http.Request) {
	dir := strings.Trim(r.URL.Query().Get("dir"), "/")
	if dir == "" {
		http.Error(w, "dir is required", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	out := []string{}
	for name := range s.userdata {
		if rest, ok := strings.CutPrefix(name, dir+"/"); ok {
			out = append(out, rest)
		}
	}
	s.mu.Unlock()
	slices.Sort(out)
	writeJSON(w, http.StatusOK, out)
}

// handleGetSettings answers GET /settings: every setting.
func (s *Server) handleGetSettings(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := map[string]any{}
	for k, v := range s.settings {
		out[k] = v
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// handleGetSetting answers GET /settings/{id}: the value, or null.
func (s *Server) handleGetSetting(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v := s.settings[r.PathValue("id")]
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// handlePostSetting answers POST /settings/{id} with a JSON value.
func (s *Server) handlePostSetting(w http.ResponseWriter, r *http.Request) {
	var v any
	if err := decodeBody(r, &v); err != nil {
		writeServerError(w)
		return
	}
	s.mu.Lock()
	if s.settings == nil {
		s.settings = map[string]any{}
	}
	s.settings[r.PathValue("id")] = v
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}
