package shim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoopbackCallerTrustsForwardingHeadersOnlyToTakeDetailAway(t *testing.T) {
	for _, tc := range []struct {
		name, remote string
		headers      map[string]string
		loopback     bool
	}{
		{"ipv4 loopback", "127.0.0.1:40000", nil, true},
		{"ipv6 loopback", "[::1]:40000", nil, true},
		{"other 127/8", "127.0.0.53:40000", nil, true},
		{"remote peer", "192.0.2.10:40000", nil, false},
		{"remote peer claiming loopback", "192.0.2.10:40000", map[string]string{"X-Forwarded-For": "127.0.0.1"}, false},
		{"bad remote address", "somewhere", nil, false},
		{"nginx for a local client", "127.0.0.1:40000", map[string]string{"X-Forwarded-For": "127.0.0.1"}, true},
		{"nginx for a remote client", "127.0.0.1:40000", map[string]string{"X-Forwarded-For": "203.0.113.7"}, false},
		{"forged loopback, then the real one", "127.0.0.1:40000", map[string]string{"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}, false},
		{"address with port", "127.0.0.1:40000", map[string]string{"X-Forwarded-For": "[::1]:5555"}, true},
		{"mapped ipv4 loopback", "127.0.0.1:40000", map[string]string{"X-Forwarded-For": "::ffff:127.0.0.1"}, true},
		{"garbage", "127.0.0.1:40000", map[string]string{"X-Forwarded-For": "localhost"}, false},
		{"empty", "127.0.0.1:40000", map[string]string{"X-Forwarded-For": ""}, false},
		{"x-real-ip remote", "127.0.0.1:40000", map[string]string{"X-Real-IP": "198.51.100.3"}, false},
		{"x-real-ip local", "[::1]:40000", map[string]string{"X-Real-IP": "127.0.0.1"}, true},
		{"forwarded remote", "127.0.0.1:40000", map[string]string{"Forwarded": "for=198.51.100.3;proto=https"}, false},
		{"forwarded quoted ipv6 local", "127.0.0.1:40000", map[string]string{"Forwarded": `for="[::1]:4711";proto=http`}, true},
		{"forwarded chain", "127.0.0.1:40000", map[string]string{"Forwarded": `for=127.0.0.1, for="[2001:db8::1]"`}, false},
		{"forwarded obfuscated", "127.0.0.1:40000", map[string]string{"Forwarded": "for=_hidden"}, false},
		{"forwarded unknown", "127.0.0.1:40000", map[string]string{"Forwarded": "For=unknown"}, false},
		{"forwarded without for", "127.0.0.1:40000", map[string]string{"Forwarded": "proto=https;host=example.com"}, true},
		{"other proxy header", "127.0.0.1:40000", map[string]string{"CF-Connecting-IP": "203.0.113.9"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, PathStatus, nil)
			r.RemoteAddr = tc.remote
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			assert.Equal(t, tc.loopback, loopbackCaller(r))
		})
	}
}

func TestEscapeTextEscapesControlAndFormatCharacters(t *testing.T) {
	for in, want := range map[string]string{
		"comfyui":                 "comfyui",
		"ünïcödé ✓ 画像":            "ünïcödé ✓ 画像",
		`C:\path`:                 `C:\path`,
		"a\x1b[31mred\x1b[0m":     `a\x1b[31mred\x1b[0m`,
		"line\nbreak\ttab\r\x7f":  `line\x0abreak\x09tab\x0d\x7f`,
		"c1 \u009b2J":             `c1 \u{009b}2J`,
		"bidi \u202eevil":         `bidi \u{202e}evil`,
		"bad \xff\xfe utf8":       `bad \xff\xfe utf8`,
		"zero\u200bwidth\ufeffok": `zero\u{200b}width\u{feff}ok`,
	} {
		assert.Equal(t, want, escapeText(in), "%q", in)
	}
}

// detailFixture is a generic shim whose GPU is held by another process
// with a secret in its command line and an escape sequence in its name,
// and one request waiting in the shim's line with a request id.
type detailFixture struct {
	s       *Shim
	front   *httptest.Server
	backend string // the upstream's host:port
}

const (
	secretCommand = "/opt/train/bin/python train.py --hf-token=SECRET123"
	evilService   = "train\x1b]0;pwned\x07"
	waitingID     = "alice-job-7"
)

func newDetailFixture(t *testing.T, opts ...envOption) *detailFixture {
	t.Helper()
	dir := t.TempDir()
	backend, _ := countingBackend(t)
	opts = append([]envOption{func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
	}}, opts...)
	s, front := startShim(t, dir, "generic", backend.URL, opts...)
	other, err := gpulock.New(0, gpulock.WithDir(dir), gpulock.WithService(evilService), gpulock.WithCommand(secretCommand))
	require.NoError(t, err)
	h, err := other.TryAcquire()
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodPost, front.URL+"/generate", strings.NewReader(`{}`))
		req.Header.Set(HeaderRequestID, waitingID)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	t.Cleanup(func() {
		require.NoError(t, h.Release())
		<-done // the waiting request gets the GPU and ends
	})
	waitFor(t, "the request to queue", func() bool { return s.line.len() == 1 })
	return &detailFixture{s: s, front: front, backend: strings.TrimPrefix(backend.URL, "http://")}
}

// statusDoc is what /gpulock/status answers to a request: its raw body and
// the fields the tests look at.
type statusDoc struct {
	raw    string
	holder gpulock.Holder
	shim   ShimStatus
}

func getStatus(t *testing.T, f *detailFixture, headers map[string]string) statusDoc {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, f.front.URL+PathStatus, nil)
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return decodeStatus(t, b)
}

func decodeStatus(t *testing.T, b []byte) statusDoc {
	t.Helper()
	var st Status
	require.NoError(t, json.Unmarshal(b, &st))
	require.NotNil(t, st.Holder)
	require.Len(t, st.Shim.Queue, 1)
	return statusDoc{raw: string(b), holder: st.Holder.Holder, shim: st.Shim}
}

// assertEscaped checks that no control character reaches the caller raw.
func assertEscaped(t *testing.T, d statusDoc) {
	t.Helper()
	assert.Equal(t, `train\x1b]0;pwned\x07`, d.holder.Service)
	assert.NotContains(t, d.raw, "\x1b")
	assert.NotContains(t, d.raw, `\u001b`, "escaped before JSON, not left to a JSON decoder to restore")
}

func assertMasked(t *testing.T, d statusDoc) {
	t.Helper()
	assert.Equal(t, detailMasked, d.shim.Detail)
	assert.Equal(t, "python …", d.holder.Command)
	assert.Equal(t, maskedUpstream, d.shim.Upstream)
	assert.True(t, strings.HasPrefix(d.shim.Queue[0].RequestID, "hash:"), d.shim.Queue[0].RequestID)
	for _, secret := range []string{"SECRET123", "/opt/train", waitingID} {
		assert.NotContains(t, d.raw, secret)
	}
	assert.NotContains(t, d.raw, "127.0.0.1:", "no upstream address")
	assertEscaped(t, d)
}

func TestStatusShowsFullDetailToLoopbackCallers(t *testing.T) {
	f := newDetailFixture(t)
	d := getStatus(t, f, nil)
	assert.Equal(t, detailFull, d.shim.Detail)
	assert.Equal(t, secretCommand, d.holder.Command)
	assert.Equal(t, "http://"+f.backend, d.shim.Upstream)
	assert.Equal(t, waitingID, d.shim.Queue[0].RequestID)
	assertEscaped(t, d)
}

func TestStatusMasksForwardedRemoteCallers(t *testing.T) {
	f := newDetailFixture(t)
	for _, h := range []map[string]string{
		{"X-Forwarded-For": "203.0.113.7"},
		{"X-Forwarded-For": "127.0.0.1, 203.0.113.7"},
		{"X-Real-IP": "203.0.113.7"},
		{"Forwarded": "for=203.0.113.7;proto=https"},
	} {
		assertMasked(t, getStatus(t, f, h))
	}
	// Hashes are stable within one shim, so a client can follow an entry.
	a := getStatus(t, f, map[string]string{"X-Real-IP": "203.0.113.7"})
	b := getStatus(t, f, map[string]string{"X-Real-IP": "198.51.100.1"})
	assert.Equal(t, a.shim.Queue[0].RequestID, b.shim.Queue[0].RequestID)
}

func TestStatusMasksRemotePeers(t *testing.T) {
	f := newDetailFixture(t)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, PathStatus, nil)
	req.RemoteAddr = "192.0.2.10:40000" // not a loopback peer: served in-process, no traffic
	f.s.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	assertMasked(t, decodeStatus(t, rec.Body.Bytes()))
}

func TestMaskedStatusShowsTheCallersOwnRequest(t *testing.T) {
	f := newDetailFixture(t)
	d := getStatus(t, f, map[string]string{"X-Forwarded-For": "203.0.113.7", HeaderRequestID: waitingID})
	assert.Equal(t, detailMasked, d.shim.Detail)
	assert.Equal(t, waitingID, d.shim.Queue[0].RequestID)
	assert.Equal(t, maskedUpstream, d.shim.Upstream)
	assert.NotContains(t, d.raw, "SECRET123")
}

func TestStatusDetailFlagShowsFullDetailToEveryone(t *testing.T) {
	f := newDetailFixture(t, func(c *Config) { c.StatusDetail = true })
	d := getStatus(t, f, map[string]string{"X-Forwarded-For": "203.0.113.7"})
	assert.Equal(t, detailFull, d.shim.Detail)
	assert.Equal(t, secretCommand, d.holder.Command)
	assert.Equal(t, waitingID, d.shim.Queue[0].RequestID)
	assertEscaped(t, d)
}

func TestMetricsEscapeControlCharactersInLabels(t *testing.T) {
	backend, _ := countingBackend(t)
	_, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) { c.Name = "gen\x1b[2Jx" })
	resp, err := http.Get(front.URL + PathMetrics)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "\x1b")
	m := scrape(t, front.URL)
	labels := map[string]string{}
	for _, l := range m["gpulock_shim_queue_length"].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	assert.Equal(t, `gen\x1b[2Jx`, labels["service"])
}

// TestErrorAnswersHideTheUpstreamFromRemoteCallers: the 502 of a backend
// that is down names its address only to callers with full detail, on a
// pass-through route and on a GPU route alike.
func TestErrorAnswersHideTheUpstreamFromRemoteCallers(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(down.URL, "http://")
	down.Close() // nothing listens there now
	_, front := startShim(t, t.TempDir(), "generic", down.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
	})
	for _, path := range []string{"/other", "/generate"} {
		for _, remote := range []bool{false, true} {
			req, err := http.NewRequest(http.MethodPost, front.URL+path, strings.NewReader(`{}`))
			require.NoError(t, err)
			if remote {
				req.Header.Set("X-Forwarded-For", "203.0.113.7")
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode, path)
			if remote {
				assert.NotContains(t, string(b), addr, "%s from a remote caller", path)
				assert.Contains(t, string(b), "is it running?")
			} else {
				assert.Contains(t, string(b), addr, "%s from a loopback caller", path)
			}
		}
	}
}
