package shim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// While ComfyUI's /queue fails with anything but a refused connection (a
// hung or broken ComfyUI: 500s, timeouts), check returns before its MaxHold
// and IdleTimeout cases, so a held prompt keeps the GPU with no bound.
func TestMaxHoldAppliesWhileTheQueueCannotBeRead(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/prompt":
			var m map[string]any
			_ = json.NewDecoder(r.Body).Decode(&m)
			_ = json.NewEncoder(w).Encode(map[string]any{"prompt_id": m["prompt_id"], "number": 0, "node_errors": map[string]any{}})
		case r.URL.Path == "/queue":
			http.Error(w, "internal error", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(backend.Close)
	s, front := startShim(t, t.TempDir(), "comfyui", backend.URL, func(c *Config) {
		c.MaxHold = 50 * time.Millisecond
		c.IdleTimeout = 50 * time.Millisecond
		c.WatchInterval = 10 * time.Millisecond
	})
	resp, err := http.Post(front.URL+"/prompt", "application/json", strings.NewReader(`{"prompt": {"1": {"class_type": "X", "inputs": {}}}}`))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, s.watch.count())

	waitFor(t, "the prompt's hold to end after MaxHold + IdleTimeout", func() bool { return s.watch.count() == 0 })
}
