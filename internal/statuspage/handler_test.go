package statuspage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventTimeout bounds every wait for an event in these tests.
const eventTimeout = 10 * time.Second

func newTestServer(t *testing.T, status func(*http.Request) (any, error), opts Options) (*Handler, *httptest.Server) {
	t.Helper()
	h := NewHandler(status, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return h, srv
}

func TestPageAndAssetsAreEmbeddedSmallAndHardened(t *testing.T) {
	_, srv := newTestServer(t, func(*http.Request) (any, error) { return map[string]int{}, nil }, Options{})
	total := 0
	for path, ctype := range map[string]string{PathPage: "text/html", pathScript: "text/javascript", pathStyle: "text/css"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), ctype), path)
		assert.Equal(t, ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"), path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		total += len(b)
	}
	assert.Less(t, total, 100<<10, "the page with its assets stays under 100 KB")

	page, err := assets.ReadFile("assets/index.html")
	require.NoError(t, err)
	assert.NotContains(t, string(page), "<script>", "no inline script: the CSP forbids it")
	script, err := assets.ReadFile("assets/page.js")
	require.NoError(t, err)
	assert.NotContains(t, string(script), "innerHTML", "text goes in with textContent only")
	for _, outside := range []string{`src="http`, `href="http`, `fetch("http`, `url(http`} {
		assert.NotContains(t, string(page)+string(script), outside, "no outside asset")
	}
}

func TestPageIsReadOnly(t *testing.T) {
	_, srv := newTestServer(t, func(*http.Request) (any, error) { return nil, nil }, Options{})
	resp, err := http.Post(srv.URL+PathPage, "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.True(t, Serves("/gpulock"))
	assert.False(t, Serves("/gpulock/status"), "the status JSON is the shim's")
}

// readEvent reads one server-sent event.
func readEvent(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestEventsPushTheStatusOnNotify(t *testing.T) {
	var n atomic.Int64
	h, srv := newTestServer(t, func(*http.Request) (any, error) {
		return map[string]int64{"n": n.Load()}, nil
	}, Options{PushEvery: time.Hour}) // only Notify pushes
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+PathEvents, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	r := bufio.NewReader(resp.Body)

	name, data := readEvent(t, r)
	assert.Equal(t, "status", name)
	assert.JSONEq(t, `{"n":0}`, data)

	n.Store(7)
	h.Notify()
	_, data = readEvent(t, r)
	assert.JSONEq(t, `{"n":7}`, data)

	h.Close()
	_, err = r.ReadString('\n')
	assert.ErrorIs(t, err, io.EOF, "Close ends the stream")
}

func TestEventsSayWhyTheStatusFailed(t *testing.T) {
	_, srv := newTestServer(t, func(*http.Request) (any, error) {
		return nil, errors.New("shim: cannot read the lock")
	}, Options{PushEvery: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+PathEvents, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	name, data := readEvent(t, bufio.NewReader(resp.Body))
	assert.Equal(t, "status_error", name)
	var doc map[string]string
	require.NoError(t, json.Unmarshal([]byte(data), &doc))
	assert.Equal(t, "shim: cannot read the lock", doc["error"])
}

func TestStreamsOverTheBoundGet503(t *testing.T) {
	_, srv := newTestServer(t, func(*http.Request) (any, error) { return 1, nil }, Options{MaxStreams: 1, PushEvery: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+PathEvents, nil)
	require.NoError(t, err)
	first, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer first.Body.Close()
	readEvent(t, bufio.NewReader(first.Body)) // the stream holds its slot now

	second, err := http.Get(srv.URL + PathEvents)
	require.NoError(t, err)
	second.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, second.StatusCode)
}
