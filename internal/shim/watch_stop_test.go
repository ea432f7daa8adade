package shim

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestWatchStopIsNotBlamedOnComfyUI: a queue request cut off because the
// watch stops is no "cannot read ComfyUI's queue" warning.
func TestWatchStopIsNotBlamedOnComfyUI(t *testing.T) {
	asked := make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/queue" {
			select {
			case asked <- struct{}{}:
			default:
			}
			<-r.Context().Done() // answers only when the shim gives up
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(backend.Close)
	logs := &logBuffer{}
	s, _ := startShim(t, t.TempDir(), "comfyui", backend.URL, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})

	ctx, cancel := context.WithCancel(context.Background())
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		s.watch.check(ctx)
	}()
	select {
	case <-asked:
	case <-time.After(eventTimeout):
		t.Fatal("the watch never asked for the queue")
	}
	cancel()
	select {
	case <-checked:
	case <-time.After(eventTimeout):
		t.Fatal("check did not return after its context ended")
	}
	assert.NotContains(t, logs.String(), "cannot read ComfyUI's queue")
}

func TestAlreadyWait(t *testing.T) {
	assert.Equal(t, "1 request already waits", alreadyWait(1))
	assert.Equal(t, "5 requests already wait", alreadyWait(5))
}
