package gateway

import (
	"fmt"
	"strings"
)

// gpuRoutes are the requests that become cluster jobs, per profile.
var gpuRoutes = map[string][]string{
	"a1111": {
		"POST /sdapi/v1/txt2img",
		"POST /sdapi/v1/img2img",
		"POST /sdapi/v1/extra-single-image",
		"POST /sdapi/v1/extra-batch-images",
		"POST /sdapi/v1/interrogate",
	},
	"comfyui": {
		"POST /prompt",
		"POST /api/prompt",
	},
}

// Profiles lists the profiles a gateway serves, for help texts.
const Profiles = "comfyui, a1111"

func checkProfile(p string) error {
	if _, ok := gpuRoutes[p]; !ok {
		return fmt.Errorf("gateway: unknown profile %q (want one of %s)", p, Profiles)
	}
	return nil
}

// isJob reports whether a request is GPU work for profile.
func isJob(profile, method, path string) bool {
	for _, r := range gpuRoutes[profile] {
		if r == method+" "+path {
			return true
		}
	}
	return false
}

// historyPrompt returns the prompt id of ComfyUI's GET /history/{id}.
func historyPrompt(method, path string) (string, bool) {
	if method != "GET" {
		return "", false
	}
	for _, p := range []string{"/history/", "/api/history/"} {
		if id, ok := strings.CutPrefix(path, p); ok && id != "" && !strings.Contains(id, "/") {
			return id, true
		}
	}
	return "", false
}
