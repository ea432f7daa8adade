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
func writeQueued(w http.ResponseWriter, promptID string, number int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"prompt_id": promptID, "number": number, "node_errors": map[string]any{}})
}
