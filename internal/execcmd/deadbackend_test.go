package execcmd

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/deadholdertest"
	"github.com/gpulock/gpulock/internal/deadwait"
	"github.com/gpulock/gpulock/internal/shim"
)

// fakeBackend answers ComfyUI's /queue and A1111's /sdapi/v1/progress,
// busy for the first busyFor questions (for ever when negative).
type fakeBackend struct {
	busyFor int64
	asked   atomic.Int64
	chunked bool
	notify  chan struct{} // if set, gets a value per question (not blocking)
	pattern string        // if set, answer n is busy where pattern[n-1] is 'b' (the last repeats)
}

func (b *fakeBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := b.asked.Add(1)
	if b.notify != nil {
		select {
		case b.notify <- struct{}{}:
		default:
		}
	}
	busy := b.busyFor < 0 || n <= b.busyFor
	if b.pattern != "" {
		busy = b.pattern[min(int(n), len(b.pattern))-1] == 'b'
	}
	var body string
	switch {
	case r.URL.Path == "/queue":
		body = `{"queue_running": [], "queue_pending": []}`
		if busy {
			body = `{"queue_running": [["x"]], "queue_pending": []}`
		}
	case r.URL.Path == "/sdapi/v1/progress" && r.URL.RawQuery == "skip_current_image=true":
		jobs := 0
		if busy {
			jobs = 1
		}
		body = `{"progress": 0.5, "state": {"job_count": ` + strconv.Itoa(jobs) + `}}`
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if b.chunked {
		_, _ = io.WriteString(w, body[:5])
		w.(http.Flusher).Flush() // the rest goes chunked
	}
	_, _ = io.WriteString(w, body[min(len(body), 5*btoi(b.chunked)):])
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// deadHolderHandle takes GPU 0's lock in dir after a holder that named
// backend died holding it: its description is left in the lock file.
func deadHolderHandle(t *testing.T, profile, upstream string) *gpulock.Handle {
	t.Helper()
	dir := t.TempDir()
	deadholdertest.Leave(t, dir, "shim", profile, upstream)
	_, next := deadholdertest.Take(t, dir, "exec")
	left, ok := next.Leftover()
	require.True(t, ok)
	require.NotNil(t, left.Backend)
	return next
}

func logTo(buf *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

func TestWaitDeadBackendWaitsUntilIdle(t *testing.T) {
	for _, c := range []struct {
		profile string
		chunked bool
	}{{"a1111", false}, {"comfyui", false}, {"comfyui", true}} {
		b := &fakeBackend{busyFor: 3, chunked: c.chunked}
		srv := httptest.NewServer(b)
		h := deadHolderHandle(t, c.profile, srv.URL)
		var log bytes.Buffer
		start := time.Now()
		require.NoError(t, WaitDeadBackend(context.Background(), h, DeadHolderOptions{Logger: logTo(&log)}))
		assert.GreaterOrEqual(t, b.asked.Load(), int64(5), "%s: asked until idle twice in a row", c.profile)
		assert.GreaterOrEqual(t, time.Since(start), deadwait.Settle, "%s: and until it settled", c.profile)
		assert.Contains(t, log.String(), "waiting for the backend to be idle")
		assert.Contains(t, log.String(), "idle; going ahead")
		srv.Close()
	}
}

// TestWaitDeadBackendIdleTwiceInARow: one idle answer between busy ones is
// not idle (a job just forwarded may not show yet); --nonblock asks an idle
// backend again before it goes ahead.
func TestWaitDeadBackendIdleTwiceInARow(t *testing.T) {
	b := &fakeBackend{pattern: "ibii"}
	srv := httptest.NewServer(b)
	defer srv.Close()
	h := deadHolderHandle(t, "a1111", srv.URL)
	require.NoError(t, WaitDeadBackend(context.Background(), h, DeadHolderOptions{Logger: logTo(&bytes.Buffer{})}))
	assert.GreaterOrEqual(t, b.asked.Load(), int64(4))

	once := &fakeBackend{pattern: "ib"}
	srv2 := httptest.NewServer(once)
	defer srv2.Close()
	h2 := deadHolderHandle(t, "comfyui", srv2.URL)
	err := WaitDeadBackend(context.Background(), h2, DeadHolderOptions{Logger: logTo(&bytes.Buffer{}), Once: true})
	require.ErrorIs(t, err, ErrDeadHolderBusy)
	assert.Equal(t, int64(2), once.asked.Load())
}

func TestWaitDeadBackendOnceAndCancel(t *testing.T) {
	b := &fakeBackend{busyFor: -1, notify: make(chan struct{}, 16)}
	srv := httptest.NewServer(b)
	defer srv.Close()
	h := deadHolderHandle(t, "a1111", srv.URL)
	var log bytes.Buffer
	err := WaitDeadBackend(context.Background(), h, DeadHolderOptions{Logger: logTo(&log), Once: true})
	require.ErrorIs(t, err, ErrDeadHolderBusy)
	assert.Equal(t, int64(1), b.asked.Load())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WaitDeadBackend(ctx, h, DeadHolderOptions{Logger: logTo(&bytes.Buffer{})}) }()
	<-b.notify // the Once question
	for range 2 {
		select {
		case <-b.notify:
		case <-time.After(10 * time.Second):
			t.Fatal("the wait does not ask the backend")
		}
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end with its context")
	}
}

func TestWaitDeadBackendNotAsked(t *testing.T) {
	// A refused connection: nothing runs there any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	h := deadHolderHandle(t, "comfyui", refused)
	var log bytes.Buffer
	require.NoError(t, WaitDeadBackend(context.Background(), h, DeadHolderOptions{Logger: logTo(&log), Once: true}))
	assert.Empty(t, log.String())

	for upstream, why := range map[string]string{
		"http://10.1.2.3:8188":  "not on a loopback address",
		"http://example.com":    "not on a loopback address",
		"ftp://127.0.0.1/":      "not a plain http(s) URL",
		"http://u:p@localhost/": "not a plain http(s) URL",
	} {
		h := deadHolderHandle(t, "a1111", upstream)
		var log bytes.Buffer
		require.NoError(t, WaitDeadBackend(context.Background(), h, DeadHolderOptions{Logger: logTo(&log), Once: true}), upstream)
		assert.Contains(t, log.String(), "a backend that is not asked", upstream)
		assert.Contains(t, log.String(), why, upstream)
	}
}

// TestWaitDeadBackendHTTPSFailsClosed: an https backend on a loopback
// address, which gpulock exec would ask, cannot be asked without TLS: the
// wait fails rather than going ahead, and the dead holder's description
// stays for the next holder, who waits in turn.
func TestWaitDeadBackendHTTPSFailsClosed(t *testing.T) {
	dir := t.TempDir()
	deadholdertest.Leave(t, dir, "shim", "comfyui", "https://127.0.0.1:8188")
	l, next := deadholdertest.Take(t, dir, "exec")
	var log bytes.Buffer
	err := WaitDeadBackend(context.Background(), next, DeadHolderOptions{Logger: logTo(&log)})
	require.ErrorIs(t, err, ErrDeadHolderCannotAsk)
	assert.ErrorContains(t, err, "run gpulock exec")
	require.NoError(t, next.Release())

	after, err := l.TryAcquire()
	require.NoError(t, err)
	defer func() { _ = after.Release() }()
	left, ok := after.Leftover()
	require.True(t, ok, "the dead holder's description is passed on")
	require.NotNil(t, left.Backend)
	assert.Equal(t, "https://127.0.0.1:8188", left.Backend.Upstream)
}

func TestLoopbackAddrs(t *testing.T) {
	for raw, want := range map[string]string{
		"http://localhost:8188": "127.0.0.1:8188 [::1]:8188",
		"http://127.0.0.2":      "127.0.0.2:80",
		"http://[::1]:7860/x":   "[::1]:7860",
	} {
		b, err := checkLoopBackend(gpulock.Backend{Profile: "a1111", Upstream: raw})
		require.NoError(t, err, raw)
		var got []string
		for _, a := range b.(*loopBackend).addrs {
			got = append(got, a.String())
		}
		assert.Equal(t, want, strings.Join(got, " "), raw)
	}
	for _, raw := range []string{"http://127.0.0.1:0", "http://127.0.0.1:99999", "http://[fe80::1%25lo]:80"} {
		_, err := checkLoopBackend(gpulock.Backend{Profile: "a1111", Upstream: raw})
		assert.Error(t, err, raw)
	}
	_, err := checkLoopBackend(gpulock.Backend{Profile: "sdnext", Upstream: "http://127.0.0.1:1"})
	assert.ErrorContains(t, err, "cannot say whether it is busy")
}

func TestParseAnswer(t *testing.T) {
	status, body, err := parseAnswer([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra"))
	require.NoError(t, err)
	assert.Equal(t, 200, status)
	assert.Equal(t, "{}", string(body))
	status, body, err = parseAnswer([]byte("HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"))
	require.NoError(t, err)
	assert.Equal(t, 503, status)
	assert.Equal(t, "abcde", string(body))
	for _, bad := range []string{"", "garbage\r\n\r\n", "HTTP/1.1 abc\r\n\r\n", "HTTP/1.0 200\r\nContent-Length: 9\r\n\r\n{}",
		"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"} {
		_, _, err := parseAnswer([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

// The bounds agree with internal/shim's for the same wait.
func TestDeadBackendBoundsAgreeWithTheShim(t *testing.T) {
	assert.Equal(t, shim.DefaultDeadHolderTimeout, deadwait.DefaultTimeout)
}
