package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func response(code int, contentType, body string) *http.Response {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func TestBackendGoneIsTheShimsUpstreamUnreachableOnly(t *testing.T) {
	shim := `{"error":{"type":"upstream_unreachable","message":"gpulock: the backend did not answer; is it running?","source":"gpulock"}}`
	msg, ok := backendGone(response(http.StatusBadGateway, "application/json", shim))
	require.True(t, ok)
	assert.Equal(t, "gpulock: the backend did not answer; is it running?", msg)

	for _, c := range []struct {
		code      int
		typ, body string
	}{
		{http.StatusOK, "application/json", shim},
		{http.StatusBadGateway, "text/plain", shim},
		{http.StatusBadGateway, "application/json", `{"error":{"type":"queue_full","source":"gpulock"}}`},
		{http.StatusBadGateway, "application/json", `{"error":"the backend's own 502","detail":"x"}`},
		{http.StatusBadGateway, "application/json", `not json`},
	} {
		resp := response(c.code, c.typ, c.body)
		_, ok := backendGone(resp)
		assert.False(t, ok, c.body)
		rest, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, c.body, string(rest), "the body is still there for the client")
	}
}
