package nginxtest

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSingleHostExample runs examples/nginx/single-host.conf in front of
// one machine's ComfyUI and A1111 shims: API jobs of both, ComfyUI's
// websocket, and the Host/Origin check all work through it.
func TestSingleHostExample(t *testing.T) {
	m := startMachine(t, 1, 1)
	comfyPort, a1111Port := freePort(t), freePort(t)
	startNginx(t, "single-host.conf",
		map[string]string{
			"127.0.0.1:3188": "127.0.0.1:" + strconv.Itoa(m.comfyShim[0]),
			"127.0.0.1:7870": "127.0.0.1:" + strconv.Itoa(m.a1111Shim[0]),
		},
		map[string]int{"8080": comfyPort, "8081": a1111Port})
	comfyBase := "http://127.0.0.1:" + strconv.Itoa(comfyPort)
	a1111Base := "http://127.0.0.1:" + strconv.Itoa(a1111Port)

	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()

	// ComfyUI's websocket passes nginx and the shim.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(comfyBase, "http")+"/ws?clientId=browser", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	_, frame, err := ws.Read(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(frame), `"status"`)

	// A browser's Origin matches the Host it sent, which nginx passes on.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, comfyBase+"/queue", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", comfyBase)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	_, err = (&loadgen.Client{Base: comfyBase}).ComfyPrompt(ctx, fakecomfy.TextToImagePrompt(4, 1))
	require.NoError(t, err)
	require.NoError(t, (&loadgen.Client{Base: a1111Base}).A1111Txt2Img(ctx, 4))

	st, err := m.gpu(t, 0).Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(2), st.Jobs)
	assert.Zero(t, st.Overlaps)

	// The shims' status and metrics answer 127.0.0.1 only; another
	// address (127.0.0.2, still loopback) gets 403.
	from2 := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	for _, base := range []string{comfyBase, a1111Base} {
		for _, path := range []string{"/gpulock/status", "/gpulock/metrics"} {
			assert.Equal(t, http.StatusOK, getStatus(t, ctx, http.DefaultClient, base+path), "from 127.0.0.1: %s", path)
			assert.Equal(t, http.StatusForbidden, getStatus(t, ctx, from2, base+path), "from 127.0.0.2: %s", path)
		}
	}
}

// getStatus GETs url with client and returns the status code.
func getStatus(t *testing.T, ctx context.Context, client *http.Client, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}
