package shim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Short server timeouts, so that the tests see them trip (or not).
const (
	testHeaderTimeout    = 200 * time.Millisecond
	testBodyTimeout      = 300 * time.Millisecond
	testKeepAliveTimeout = 200 * time.Millisecond
	// outlast is longer than every timeout above: a wait that lasts it
	// would have tripped any of them.
	outlast = 4 * testBodyTimeout
)

func shortTimeouts(c *Config) {
	c.HeaderTimeout, c.BodyTimeout, c.KeepAliveTimeout = testHeaderTimeout, testBodyTimeout, testKeepAliveTimeout
}

// A body trickled slower than --body-timeout gets 408, on a GPU route and
// on a pass-through route, although bytes keep coming.
func TestTrickledBodyGets408(t *testing.T) {
	for _, path := range []string{"/sdapi/v1/txt2img", "/sdapi/v1/png-info"} {
		t.Run(path, func(t *testing.T) {
			backend, forwarded := countingBackend(t)
			s, front := startShim(t, t.TempDir(), "a1111", backend.URL, shortTimeouts)
			c := dialRaw(t, front.URL)
			start := time.Now()
			c.send("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
			stop := make(chan struct{})
			trickled := make(chan struct{})
			go func() { // one byte every 20 ms: 1000 bytes would take 20 s
				defer close(trickled)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := c.Write([]byte(" ")); err != nil {
							return
						}
					}
				}
			}()
			resp, body := c.response()
			close(stop)
			<-trickled
			assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
			assert.Equal(t, bodyTimeout, shimError(t, body).Type)
			assert.GreaterOrEqual(t, time.Since(start), testBodyTimeout)
			assert.Equal(t, 1.0, badRequests(t, s, bodyTimeout))
			if strings.HasSuffix(path, "txt2img") {
				assert.Zero(t, forwarded.Load(), "a GPU request is not forwarded")
			}
		})
	}
}

// The body timeout bounds the reading of the body only: a long wait in
// line and a backend slow to answer a held request outlast it.
func TestLongWaitAndSlowAnswerOutlastTheTimeouts(t *testing.T) {
	answer := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // an A1111 job that runs longer than every timeout
		case <-answer:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte(`{"images":[]}`))
	}))
	t.Cleanup(backend.Close)
	t.Cleanup(func() {
		select {
		case <-answer:
		default:
			close(answer)
		}
	})
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL, shortTimeouts)
	release := holdGPU(t, s)
	c := dialRaw(t, front.URL)
	c.send("POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	waitFor(t, "the request in line", func() bool { return s.line.len() == 1 })
	<-time.After(outlast) // a measured interval in line, not a synchronisation
	require.Equal(t, 1, s.line.len(), "still waiting, not cancelled by a timeout")
	release()
	waitFor(t, "the job to hold the GPU", func() bool { return s.inflight.count() == 1 })
	<-time.After(outlast) // the backend works on it
	close(answer)
	resp, body := c.response()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"images":[]}`, string(body))
}

// A websocket stays open past every timeout.
func TestWebsocketOutlastsTheTimeouts(t *testing.T) {
	e := newEnv(t, shortTimeouts)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(e.comfyVia, "http") + "/ws?clientId=browser"
	conn, _, err := websocket.Dial(ctx, ws, nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	_, data, err := conn.Read(ctx)
	require.NoError(t, err)
	require.Contains(t, string(data), `"status"`)
	<-time.After(outlast) // a measured idle interval, not a synchronisation
	// The queue's news of a prompt still arrives over the same socket.
	_, err = client(e.comfyVia).ComfyPrompt(ctx, promptGraph(2))
	require.NoError(t, err)
	_, data, err = conn.Read(ctx)
	require.NoError(t, err, "the socket is still open")
	assert.NotEmpty(t, data)
}

// An idle keep-alive connection is closed after --keepalive-timeout, and a
// client that sends no headers is cut off after the header timeout.
func TestIdleAndSilentConnectionsAreClosed(t *testing.T) {
	backend, _ := countingBackend(t)
	_, front := startShim(t, t.TempDir(), "a1111", backend.URL, shortTimeouts)

	c := dialRaw(t, front.URL)
	c.send("GET /sdapi/v1/options HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := c.response()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	idle := time.Now()
	assert.True(t, c.closed(), "the idle connection is closed")
	assert.GreaterOrEqual(t, time.Since(idle), testKeepAliveTimeout)

	silent := dialRaw(t, front.URL)
	silent.send("GET /sdapi/v1/options HTTP/1.1\r\nHost:")
	start := time.Now()
	assert.True(t, silent.closed(), "a request whose headers never end is cut off")
	assert.GreaterOrEqual(t, time.Since(start), testHeaderTimeout-50*time.Millisecond)
}
