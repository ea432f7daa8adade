package shim

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gpuHolder takes the shim's GPU lock from the test, so that any request
// that waited for it would hang: passthrough must not.
func holdGPU(t *testing.T, s *Shim) func() {
	t.Helper()
	h, err := s.Lock().TryAcquire()
	require.NoError(t, err)
	return func() { require.NoError(t, h.Release()) }
}

func TestPassthroughNeverWaitsForTheLock(t *testing.T) {
	e := newEnv(t)
	release := holdGPU(t, e.comfyShim)
	defer release()
	for _, path := range []string{"/", "/queue", "/prompt", "/object_info", "/system_stats", "/history", "/api/queue"} {
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.comfyVia+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, path)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

func TestWebsocketPassesThrough(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(e.comfyVia, "http") + "/ws?clientId=browser"
	conn, _, err := websocket.Dial(ctx, ws, nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	_, data, err := conn.Read(ctx) // ComfyUI greets every socket with a status frame
	require.NoError(t, err)
	assert.Contains(t, string(data), `"status"`)
}

func TestHostHeaderIsKeptForComfyUIsOriginCheck(t *testing.T) {
	e := newEnv(t)
	// A browser on the shim's address sends Origin = the shim; ComfyUI
	// compares it with Host, which must be the one the browser sent.
	req, err := http.NewRequest(http.MethodGet, e.comfyVia+"/queue", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", e.comfyVia)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	req.Header.Set("Origin", "http://evil.example:1234")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a foreign origin is still refused by the backend")
}

func TestStreamsAreNotBuffered(t *testing.T) {
	// An SSE backend that sends one event, then waits for the test to have
	// read it before sending the next: a buffering proxy would deadlock.
	next := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer backend.Close()
	_, front := startShim(t, t.TempDir(), "generic", backend.URL)
	resp, err := http.Get(front.URL + "/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("data: %d\n", i), line)
		_, _ = r.ReadString('\n')
		if i < 2 {
			select {
			case next <- struct{}{}:
			case <-time.After(eventTimeout):
				t.Fatal("backend did not ask for more")
			}
		}
	}
}

func TestLargeUploadStreamsThrough(t *testing.T) {
	e := newEnv(t)
	const size = 64 << 20
	pr, pw := io.Pipe()
	go func() {
		mw := "--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n"
		_, _ = pw.Write([]byte(mw))
		_, _ = io.CopyN(pw, rand.Reader, size)
		_, _ = pw.Write([]byte("\r\n--b--\r\n"))
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, e.comfyVia+"/upload/image", pr)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
}
