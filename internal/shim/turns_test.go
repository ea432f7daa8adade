package shim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/gpulock"
)

// orderBackend records the "id" of every POST body, in the order served.
func orderBackend(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			var body struct{ ID string }
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &body)
			mu.Lock()
			ids = append(ids, body.ID)
			mu.Unlock()
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), ids...) }
}

// queueJobs sends one job per id, from client clientOf(id), each in line
// before the next is sent, while the GPU is held; it returns a wait for
// their answers.
func queueJobs(t *testing.T, s *Shim, url string, ids []string, header func(id string) http.Header) func() {
	t.Helper()
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(`{"id":"`+id+`"}`))
			if !assert.NoError(t, err) {
				return
			}
			req.Header = header(id)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if assert.NoError(t, err) {
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, id)
			}
		})
		waitFor(t, id+" in line", func() bool { return s.line.len() == i+1 })
	}
	return wg.Wait
}

func byClientHeader(id string) http.Header {
	h := http.Header{}
	h.Set(HeaderClient, id[:1]) // "a3" is client "a"
	return h
}

func TestShimTakesTurnsBetweenClients(t *testing.T) {
	backend, served := orderBackend(t)
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
	})
	release := holdGPU(t, s)
	wait := queueJobs(t, s, front.URL+"/generate", []string{"a1", "a2", "a3", "a4", "b1"}, byClientHeader)

	st, err := s.status()
	require.NoError(t, err)
	var line []string
	for _, q := range st.Shim.Queue {
		line = append(line, q.Client)
	}
	assert.Equal(t, []string{"a", "b", "a", "a", "a"}, line, "the status shows the fair order")
	assert.Equal(t, map[string]int{"a": 4, "b": 1}, st.Shim.Clients)
	assert.True(t, st.Shim.Fair)
	resp, err := http.Get(front.URL + "/gpulock/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^gpulock_shim_waiting\{[^}]*priority="normal"[^}]*\} 5$`, string(metrics))
	assert.Regexp(t, `(?m)^gpulock_shim_waiting\{[^}]*priority="high"[^}]*\} 0$`, string(metrics))
	assert.Regexp(t, `(?m)^gpulock_shim_waiting_clients\{[^}]*\} 2$`, string(metrics))

	release()
	wait()
	assert.Equal(t, []string{"a1", "b1", "a2", "a3", "a4"}, served(), "b waits for one of a's jobs, not four")
}

func TestShimArrivalOrderWhenNotFair(t *testing.T) {
	backend, served := orderBackend(t)
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.Turns.ArrivalOrder = true
	})
	release := holdGPU(t, s)
	wait := queueJobs(t, s, front.URL+"/generate", []string{"a1", "a2", "b1"}, byClientHeader)
	release()
	wait()
	assert.Equal(t, []string{"a1", "a2", "b1"}, served())
}

func TestPriorityHeaderOnlyWhenAllowed(t *testing.T) {
	for _, allowed := range []bool{false, true} {
		backend, served := orderBackend(t)
		s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
			c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
			c.Turns.PriorityHeader = allowed
		})
		release := holdGPU(t, s)
		wait := queueJobs(t, s, front.URL+"/generate", []string{"a1", "a2", "h1"}, func(id string) http.Header {
			h := byClientHeader(id)
			if id == "h1" {
				h.Set(HeaderClient, "a") // the same client: only the level can move it
				h.Set(HeaderPriority, "high")
			}
			return h
		})
		release()
		wait()
		if allowed {
			assert.Equal(t, []string{"h1", "a1", "a2"}, served())
		} else {
			assert.Equal(t, []string{"a1", "a2", "h1"}, served(), "an anonymous client cannot jump the line")
		}
	}
}

func TestClientOfARequest(t *testing.T) {
	proxies, err := ParseTrustedProxies("127.0.0.1, 10.0.0.0/8")
	require.NoError(t, err)
	s := &Shim{cfg: Config{Turns: Turns{TrustedProxies: proxies, Priority: gpulock.PriorityLow}}}
	req := func(remote string, h http.Header) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/x", nil)
		r.RemoteAddr = remote
		for k, v := range h {
			r.Header.Set(k, v[0])
		}
		return r
	}
	assert.Equal(t, gpulock.Turn{Client: "comfy-1", Priority: gpulock.PriorityLow}, s.turnOf(req("192.0.2.9:5", nil), "comfy-1"))
	assert.Equal(t, "me", s.turnOf(req("192.0.2.9:5", http.Header{HeaderClient: {"me"}}), "").Client)
	assert.Equal(t, "addr:192.0.2.9", s.turnOf(req("192.0.2.9:5", nil), "").Client)
	assert.Equal(t, "addr:192.0.2.9", s.turnOf(req("192.0.2.9:5", http.Header{"X-Forwarded-For": {"198.51.100.1"}}), "").Client,
		"an untrusted peer's X-Forwarded-For is ignored")
	assert.Equal(t, "addr:198.51.100.1", s.turnOf(req("127.0.0.1:5", http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1, 10.1.2.3"}}), "").Client,
		"the last address before the trusted proxies")
	assert.Equal(t, gpulock.PriorityLow, s.turnOf(req("127.0.0.1:5", http.Header{HeaderPriority: {"high"}}), "").Priority,
		"the header counts only where allowed")
	assert.Len(t, s.turnOf(req("127.0.0.1:5", http.Header{HeaderClient: {strings.Repeat("x", 1000)}}), "").Client, maxClientLen)

	_, err = ParseTrustedProxies("nginx.local")
	assert.ErrorContains(t, err, "--trust-proxy")
	p, err := ParseTrustedProxies("::1")
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("::1/128")}, p)
}

func TestPromptClientID(t *testing.T) {
	client := func(body string) string {
		_, _, c, _ := preparePrompt([]byte(body), nil, "shim")
		return turnClient(c, "shim")
	}
	assert.Equal(t, "c1", client(`{"prompt":{},"client_id":"c1"}`))
	assert.Empty(t, client(`{"prompt":{},"client_id":"shim"}`))
	assert.Empty(t, client(`{"prompt":{"x":NaN}}`))
}
