package gateway

import (
	"net/http"
	"strings"
)

// serveExtra answers the routes the gateway serves itself beside the line:
// GET /gpulock/prompt/{id} (promptstatus.go), and for ComfyUI POST
// /interrupt (interrupt.go), POST /free (free.go) and the routes that store
// state on one machine (sticky.go). It reports false for the rest.
func (g *Gateway) serveExtra(w http.ResponseWriter, r *http.Request) bool {
	if id, ok := strings.CutPrefix(r.URL.Path, PathPrompt); ok {
		g.promptStatus(w, r, id)
		return true
	}
	if g.cfg.Profile != "comfyui" {
		return false
	}
	path, _ := cutAPI(r.URL.Path)
	switch {
	case r.Method == http.MethodPost && path == "/interrupt":
		g.interrupt(w, r)
	case r.Method == http.MethodPost && path == "/free":
		g.free(w, r)
	case isSticky(path):
		g.passSticky(w, r)
	default:
		return false
	}
	return true
}
