package shim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowPromptBackend answers POST /prompt only when answer is closed, and
// reports every prompt done (an empty /queue).
func slowPromptBackend(t *testing.T) (url string, arrived, answer chan struct{}) {
	t.Helper()
	arrived, answer = make(chan struct{}), make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/prompt":
			var m map[string]any
			_ = json.NewDecoder(r.Body).Decode(&m)
			close(arrived)
			<-answer
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"prompt_id": m["prompt_id"], "number": 0, "node_errors": map[string]any{}})
		case r.URL.Path == "/queue":
			w.Write([]byte(`{"queue_running": [], "queue_pending": []}`))
		case r.URL.Path == "/interrupt":
			w.Write([]byte(`{}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(backend.Close)
	return backend.URL, arrived, answer
}

// postPrompt sends a prompt to the shim and reports the status code.
func postPrompt(base string, done chan<- int) {
	resp, err := http.Post(base+"/prompt", "application/json", strings.NewReader(`{"prompt": {"1": {"class_type": "X", "inputs": {}}}}`))
	if err != nil {
		done <- 0
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	done <- resp.StatusCode
}

// A prompt still being forwarded when Shutdown runs is one of the shim's
// running jobs: Shutdown waits for it, and the lock is free when it returns.
func TestShutdownWaitsForAPromptBeingForwarded(t *testing.T) {
	url, arrived, answer := slowPromptBackend(t)
	s, front := startShim(t, t.TempDir(), "comfyui", url)
	done := make(chan int, 1)
	go postPrompt(front.URL, done)
	<-arrived // the shim holds the lock and forwards the prompt

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	select {
	case <-stopped:
		t.Fatal("Shutdown returned while a prompt was being forwarded")
	case <-time.After(shutdownPatience):
	}
	close(answer)
	require.Equal(t, http.StatusOK, <-done)
	require.NoError(t, <-stopped)
	assert.Zero(t, s.watch.count())
	st, err := s.Lock().Status()
	require.NoError(t, err)
	assert.False(t, st.Held, "the GPU lock is free after Shutdown")
}

// If the forwarding outlasts the shutdown's bound, the prompt is
// interrupted and its lock released as soon as the forwarding ends: no
// watch is left to look after it.
func TestShutdownDuringPromptForwardKeepsNoLock(t *testing.T) {
	url, arrived, answer := slowPromptBackend(t)
	s, front := startShim(t, t.TempDir(), "comfyui", url, func(c *Config) { c.DrainTimeout = 50 * time.Millisecond })
	done := make(chan int, 1)
	go postPrompt(front.URL, done)
	<-arrived

	require.NoError(t, s.Shutdown(context.Background()))
	close(answer)
	require.Equal(t, http.StatusOK, <-done)
	waitFor(t, "the late prompt's lock to be released", func() bool {
		st, err := s.Lock().Status()
		return err == nil && !st.Held
	})
	assert.Zero(t, s.watch.count())
}
