package shim

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// holdMode says how long a GPU request holds the lock once forwarded.
type holdMode int

const (
	// holdRequest holds the lock for the request's life, response body
	// included; a client that leaves cancels the upstream request.
	holdRequest holdMode = iota
	// holdUntilAnswer holds the lock until the backend has answered in
	// full, even if the client has left: the upstream request is not
	// cancelled, since the backend would keep the GPU busy anyway.
	holdUntilAnswer
	// holdUntilPromptDone holds the lock after the answer, until ComfyUI
	// reports the queued prompt finished.
	holdUntilPromptDone
	// holdUntilIdle holds the lock after the answer, until the backend
	// reports idle: for a request the shim could not read (unknownWork).
	holdUntilIdle
)

// Profile describes one kind of backend.
type Profile struct {
	// Name is "comfyui", "a1111" or "generic".
	Name string
	// routes are the profile's own GPU routes.
	routes []Route
	// extraHold is how requests on routes added with --gpu-route hold the lock.
	extraHold holdMode
	// defaultMaxHold is the MaxHold used when none is configured; 0 is off.
	defaultMaxHold time.Duration
}

// Profiles are the backends the shim knows.
var profiles = map[string]Profile{
	"comfyui": {
		Name: "comfyui",
		routes: []Route{
			mustRoute("POST /prompt", holdUntilPromptDone),
			mustRoute("POST /api/prompt", holdUntilPromptDone),
		},
		extraHold:      holdRequest,
		defaultMaxHold: 30 * time.Minute,
	},
	"a1111": {
		Name: "a1111",
		routes: append([]Route{
			mustRoute("POST /sdapi/v1/txt2img", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/img2img", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/extra-single-image", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/extra-batch-images", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/interrogate", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/reload-checkpoint", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/unload-checkpoint", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/train/*", holdUntilAnswer),
			mustRoute("POST /sdapi/v1/create/*", holdUntilAnswer),
			withBodyCheck(mustRoute("POST /sdapi/v1/options", holdUntilAnswer), changesModel),
		}, gradioRoutes()...),
		extraHold: holdUntilAnswer,
	},
	"generic": {
		Name:      "generic",
		extraHold: holdRequest,
	},
}

// ProfileNames lists the known profiles, for help texts.
const ProfileNames = "comfyui, a1111, generic"

// LookupProfile returns the profile called name.
func LookupProfile(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("shim: unknown profile %q (want one of %s)", name, ProfileNames)
	}
	return p, nil
}

// Route is a GPU route: a method and a path pattern where '*' matches any
// run of characters, '/' included.
type Route struct {
	Method  string
	Pattern string
	hold    holdMode
	// judge, when set, decides from the request body whether this request
	// is GPU work (A1111's /options is only when it changes the model).
	judge func(body []byte, h http.Header) verdict
}

// ParseRoute parses "METHOD /path/pattern", such as "POST /v1/generate" or
// "POST /controlnet/*".
func ParseRoute(s string) (Route, error) {
	method, pattern, ok := strings.Cut(strings.TrimSpace(s), " ")
	pattern = strings.TrimSpace(pattern)
	if !ok || method == "" || !strings.HasPrefix(pattern, "/") || strings.ContainsAny(pattern, " \t") {
		return Route{}, fmt.Errorf("shim: bad GPU route %q: want \"METHOD /path\", e.g. \"POST /v1/generate\" (* matches anything)", s)
	}
	return Route{Method: strings.ToUpper(method), Pattern: pattern}, nil
}

func mustRoute(s string, hold holdMode) Route {
	r, err := ParseRoute(s)
	if err != nil {
		panic(err)
	}
	r.hold = hold
	return r
}

func withBodyCheck(r Route, judge func([]byte, http.Header) verdict) Route {
	r.judge = judge
	return r
}

// matches reports whether the request's method and path fit the route.
func (r Route) matches(method, path string) bool {
	return (r.Method == "*" || r.Method == method) && globMatch(r.Pattern, path)
}

// globMatch matches s against pattern, where '*' matches any run of
// characters (including none and including '/').
func globMatch(pattern, s string) bool {
	for {
		star := strings.IndexByte(pattern, '*')
		if star < 0 {
			return pattern == s
		}
		if !strings.HasPrefix(s, pattern[:star]) {
			return false
		}
		s = s[star:]
		pattern = pattern[star+1:]
		if pattern == "" {
			return true
		}
		for i := 0; i <= len(s); i++ {
			if globMatch(pattern, s[i:]) {
				return true
			}
		}
		return false
	}
}

// classify returns the GPU route a request's method and path take, if any.
// A route with judge set decides only once the body is read.
func classify(routes []Route, r *http.Request) (route Route, gpu bool) {
	for _, rt := range routes {
		if rt.matches(r.Method, r.URL.Path) {
			return rt, true
		}
	}
	return Route{}, false
}
