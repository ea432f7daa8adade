package shim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Header names the shim sets.
const (
	// HeaderWait is set on GPU responses: the time the request spent in
	// line, in seconds.
	HeaderWait = "X-Gpulock-Wait"
	// HeaderRetryAfter is sent with every 503.
	HeaderRetryAfter = "Retry-After"
)

// errorBody is the JSON body of the shim's own error answers.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	// Type is a stable word to branch on: queue_full, queue_timeout,
	// shutting_down, upstream_unreachable, body_too_large, bad_body,
	// body_timeout, buffer_full.
	Type string `json:"type"`
	// Message says what happened and what to do, for people.
	Message string `json:"message"`
	// Source is always "gpulock", so clients tell the shim's errors from the backend's.
	Source string `json:"source"`
}

// writeError answers with the shim's JSON error body.
func writeError(w http.ResponseWriter, code int, typ, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: errorDetail{Type: typ, Message: message, Source: "gpulock"}})
}

// writeUnavailable answers 503 with Retry-After: nothing was forwarded.
func writeUnavailable(w http.ResponseWriter, retryAfter time.Duration, typ, message string) {
	w.Header().Set(HeaderRetryAfter, strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	writeError(w, http.StatusServiceUnavailable, typ, message)
}

// writeUpstreamError answers 502: the backend could not be reached. Its
// address and the error show only to callers with full detail (detail.go).
func (s *Shim) writeUpstreamError(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, http.StatusBadGateway, "upstream_unreachable",
		fmt.Sprintf("gpulock: %s did not answer; is it running?", s.viewFor(r).backend(s.cfg.Upstream.Redacted(), err)))
}

// seconds renders a duration for HeaderWait.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}
