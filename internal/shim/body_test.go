package shim

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unreadableBodies are requests whose body cannot be read, after the
// request line and headers: each is sent raw, then the sending side closes.
var unreadableBodies = []struct{ name, headers, body string }{
	{"malformed chunking", "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"},
	{"chunk-size overflow", "Transfer-Encoding: chunked\r\n", "fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n"},
	{"Content-Length cut short", "Content-Length: 100\r\n", `{"prompt": {}`},
}

// A GPU request whose body cannot be read gets the shim's 400, is logged
// and counted, and nothing reaches the backend: never an empty 200.
func TestUnreadableGPUBodyIs400(t *testing.T) {
	routes := []struct{ profile, path string }{
		{"a1111", "/sdapi/v1/txt2img"},
		{"comfyui", "/prompt"},
	}
	for _, rt := range routes {
		for _, tc := range unreadableBodies {
			t.Run(rt.profile+" "+tc.name, func(t *testing.T) {
				backend, forwarded := countingBackend(t)
				var logs logBuffer
				s, front := startShim(t, t.TempDir(), rt.profile, backend.URL, logTo(&logs))
				c := dialRaw(t, front.URL)
				c.send("POST " + rt.path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + tc.headers + "\r\n" + tc.body)
				c.halfClose()
				resp, body := c.response()
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
				assert.Equal(t, badBody, shimError(t, body).Type)
				assert.Zero(t, forwarded.Load(), "nothing is forwarded")
				assert.Equal(t, 1.0, badRequests(t, s, badBody))
				assert.Contains(t, logs.String(), "refused a request body")
				assert.Contains(t, logs.String(), "reason="+badBody)
				assert.Zero(t, s.line.len())
				assert.Zero(t, s.budget.inUse(), "the body's memory is given back")
				h, err := s.Lock().TryAcquire()
				require.NoError(t, err, "the GPU was never taken")
				require.NoError(t, h.Release())
			})
		}
	}
}

// On a pass-through route the same bodies blame the client's body with a
// 400, not the backend with a 502.
func TestUnreadablePassthroughBodyIs400(t *testing.T) {
	for _, tc := range unreadableBodies {
		t.Run(tc.name, func(t *testing.T) {
			backend, _ := countingBackend(t)
			s, front := startShim(t, t.TempDir(), "a1111", backend.URL)
			c := dialRaw(t, front.URL)
			c.send("POST /sdapi/v1/png-info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + tc.headers + "\r\n" + tc.body)
			c.halfClose()
			resp, body := c.response()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			e := shimError(t, body)
			assert.Equal(t, badBody, e.Type)
			assert.NotContains(t, e.Message, "is it running")
			assert.Equal(t, 1.0, badRequests(t, s, badBody))
		})
	}
}

// A readable pass-through body still reaches the backend, and a backend
// that is down is still blamed as such.
func TestPassthroughBodyStillFlows(t *testing.T) {
	backend, forwarded := countingBackend(t)
	_, front := startShim(t, t.TempDir(), "a1111", backend.URL)
	resp, _ := postJSON(t, front.URL+"/sdapi/v1/png-info", `{"image": "x"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), forwarded.Load())

	backend.Close()
	resp, doc := postJSON(t, front.URL+"/sdapi/v1/png-info", `{"image": "x"}`)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, "upstream_unreachable", errorType(doc))
}
