package fakecomfy

import (
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulock/gpulock/internal/fakeimage"
)

// Upload is what the fake kept of one uploaded file: its size and digest
// (not its bytes).
type Upload struct {
	// Size is the file's length in bytes.
	Size int64
	// SHA256 is the digest of its bytes.
	SHA256 [32]byte
}

// Uploaded reports what POST /upload/image (or mask) received under name,
// the path a LoadImage names ("sub/x.png" for subfolder "sub").
func (s *Server) Uploaded(name string) (Upload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads[name]
	return u, ok
}

// handleUploadImage answers POST /upload/image and /upload/mask: the
// multipart "image" part is read as it streams in (its bytes are counted
// and hashed, not kept) and answered {"name", "subfolder", "type"}, under
// a new name when the fake holds other bytes under it and the form has no
// overwrite=true, as ComfyUI does ("x (1).png"). Bodies
// over MaxUploadBytes get 413; a subfolder that leaves the input folder 400.
func (s *Server) handleUploadImage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var name, subfolder, typ = "", "", "input"
	overwrite := false
	var up Upload
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
			h := sha256.New()
			up.Size, err = io.Copy(h, part)
			copy(up.SHA256[:], h.Sum(nil))
		case "subfolder", "type", "overwrite":
			var b []byte
			b, err = io.ReadAll(io.LimitReader(part, 1024))
			switch part.FormName() {
			case "type":
				typ = string(b)
			case "overwrite":
				overwrite = string(b) == "true" || string(b) == "1"
			default:
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
	if name == "" || name == "." || name == "/" || !insideFolder(subfolder) {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	name = s.freeNameLocked(subfolder, name, up, overwrite)
	s.uploads[path.Join(subfolder, name)] = up
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "subfolder": subfolder, "type": typ})
}

// freeNameLocked is the name ComfyUI keeps an upload under: name, unless
// it holds other bytes under it and overwrite is not set: then the first
// "stem (i).ext" that is free or holds the same bytes. s.mu is held.
func (s *Server) freeNameLocked(subfolder, name string, up Upload, overwrite bool) string {
	ext := path.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 1; !overwrite; i++ {
		had, ok := s.uploads[path.Join(subfolder, name)]
		if !ok || had.SHA256 == up.SHA256 {
			break
		}
		name = stem + " (" + strconv.Itoa(i) + ")" + ext
	}
	return name
}

// insideFolder reports whether a subfolder stays inside its folder, as
// ComfyUI checks the upload's full path.
func insideFolder(sub string) bool {
	if strings.HasPrefix(sub, "/") || strings.Contains(sub, "\\") {
		return false
	}
	return !slices.Contains(strings.Split(sub, "/"), "..")
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

// handleView answers GET /view?filename=...&subfolder=...&type=...: a tiny
// PNG for images the fake made (type output) or received (type input),
// 404 for others.
func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("filename")
	var ok bool
	switch q.Get("type") {
	case "input":
		_, ok = s.Uploaded(path.Join(q.Get("subfolder"), name))
	case "", "output":
		ok = q.Get("subfolder") == "" && s.madeImage(name)
	}
	if name == "" || !ok {
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
