package gateway

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// writeError answers with the same JSON error body as the shim's.
func writeError(w http.ResponseWriter, code int, typ, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{
		"type": typ, "message": message, "source": "gpulock",
	}})
}

// writeUnavailable answers 503 with Retry-After.
func writeUnavailable(w http.ResponseWriter, retryAfter time.Duration, typ, message string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	writeError(w, http.StatusServiceUnavailable, typ, message)
}

// writeQueued answers a ComfyUI POST /prompt that waits in the cluster's
// line, as ComfyUI answers one it queued.
func writeQueued(w http.ResponseWriter, promptID string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"prompt_id": promptID, "number": 0, "node_errors": map[string]any{}})
}

// discard is the ResponseWriter of a job whose client has had its answer.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
