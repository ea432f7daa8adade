package fakecomfy

import (
	"errors"
	"io"
	"net/http"
	"path"
	"strconv"

	"github.com/gpulock/gpulock/internal/fakeimage"
)

// handleUploadImage answers POST /upload/image: the multipart "image" part
// is read as it streams in (its bytes are counted, not kept) and answered
// {"name", "subfolder", "type"}. Bodies over MaxUploadBytes get 413.
func (s *Server) handleUploadImage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var name, subfolder, typ = "", "", "input"
	var size int64
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			uploadFailed(w, err)
			return
		}
		switch part.FormName() {
		case "image":
			name = path.Base(part.FileName())
			size, err = io.Copy(io.Discard, part)
		case "subfolder", "type":
			var b []byte
			b, err = io.ReadAll(io.LimitReader(part, 1024))
			if part.FormName() == "type" {
				typ = string(b)
			} else {
				subfolder = string(b)
			}
		default:
			_, err = io.Copy(io.Discard, part)
		}
		if err != nil {
			uploadFailed(w, err)
			return
		}
	}
	if name == "" || name == "." || name == "/" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.uploads[name] = size
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "subfolder": subfolder, "type": typ})
}

// uploadFailed answers 413 for a body over the limit, 400 otherwise.
func uploadFailed(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	w.WriteHeader(http.StatusBadRequest)
}

// handleView answers GET /view?filename=...: a tiny PNG for images the fake
// made or received, 404 for others.
func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("filename")
	s.mu.Lock()
	_, uploaded := s.uploads[name]
	s.mu.Unlock()
	if name == "" || (!uploaded && !s.madeImage(name)) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(fakeimage.PNG())
}

// madeImage reports whether a SaveImage of this server wrote name.
func (s *Server) madeImage(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.history {
		for _, out := range e.Outputs {
			m, _ := out.(map[string]any)
			imgs, _ := m["images"].([]map[string]any)
			for _, img := range imgs {
				if img["filename"] == name {
					return true
				}
			}
		}
	}
	return false
}

// itoa formats an int.
func itoa(n int) string { return strconv.Itoa(n) }
