package gateway

import (
	"net/http"
	"strings"
)

// stickyPrefixes are ComfyUI's routes that store state on the machine
// (saved workflows and user files, settings, users), without /api.
var stickyPrefixes = []string{"/userdata", "/v2/userdata", "/settings", "/users"}

// isSticky reports whether path (without /api) stores state on its machine.
func isSticky(path string) bool {
	for _, p := range stickyPrefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// passSticky passes a route that stores state to one machine, the same for
// every such route and every gateway while it lives: the first live
// machine by its id (node name, GPU number), so that a workflow saved
// through the gateway is found again there. When that machine leaves, the
// next one in the order takes over (with its own files: share ComfyUI's
// user directory between the machines to keep them).
func (g *Gateway) passSticky(w http.ResponseWriter, r *http.Request) {
	gpus, err := g.cfg.Store.LiveGPUs(r.Context(), g.cfg.Profile)
	if err != nil {
		writeUnavailable(w, g.cfg.RetryAfter, "cluster_unreachable", "gpulock: cannot read the cluster's state in Redis: "+err.Error())
		return
	}
	if len(gpus) == 0 {
		writeUnavailable(w, g.cfg.RetryAfter, "no_machine", "gpulock: no live machine serves "+g.cfg.Profile+"; start a shim with --redis")
		return
	}
	g.pass(w, r, gpus[0].URL)
}
