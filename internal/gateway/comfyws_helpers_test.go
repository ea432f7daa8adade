package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/gpulock/gpulock/internal/simgpu"
)

// comfyMachine is a machine of the websocket tests: a fake ComfyUI with
// previews, whose /view requests are counted, behind a shim whose every
// connection (websockets too) can be cut at once, as when the machine dies.
type comfyMachine struct {
	*machine
	conns   *connTracker
	backend string // the fake's own URL
	mu      sync.Mutex
	views   []string // filenames its backend served through /view
}

// startComfyMachine adds a ComfyUI machine to e.
func (e *clusterEnv) startComfyMachine(t testing.TB, name string) *comfyMachine {
	t.Helper()
	m := &comfyMachine{machine: &machine{name: name, dir: t.TempDir(), shims: map[string]*shim.Shim{}, front: map[string]*httptest.Server{}}}
	var err error
	m.gpu, err = simgpu.Open(m.dir, 0, simgpu.Options{})
	require.NoError(t, err)
	m.comfy, err = fakecomfy.New(fakecomfy.Config{GPU: m.gpu, StepDuration: stepDuration, Previews: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.comfy.Close() })
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/view" && r.URL.Query().Get("type") == "output" {
			m.mu.Lock()
			m.views = append(m.views, r.URL.Query().Get("subfolder")+"|"+r.URL.Query().Get("filename"))
			m.mu.Unlock()
		}
		m.comfy.ServeHTTP(w, r)
	}))
	t.Cleanup(backend.Close)
	m.backend = backend.URL
	m.conns = &connTracker{conns: map[net.Conn]bool{}}
	m.startShimWith(t, e, "comfyui", backend.URL, func(l net.Listener) net.Listener { m.conns.Listener = l; return m.conns })
	e.machines = append(e.machines, m.machine)
	return m
}

// served returns the /view requests the machine's backend got.
func (m *comfyMachine) served() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.views...)
}

// kill cuts the machine off: its shim stops taking connections, every
// open one (the websockets the gateway reads) is cut, and its
// registration ends, while its backend goes on as a machine that is
// unreachable would.
func (m *comfyMachine) kill(t *testing.T) {
	t.Helper()
	m.front["comfyui"].Listener.Close()
	m.conns.closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), testLease)
	defer cancel()
	_ = m.shims["comfyui"].Shutdown(ctx)
}

// connTracker is a listener wrapper that can close every connection it
// accepted, hijacked ones included.
type connTracker struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (c *connTracker) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err == nil {
		c.mu.Lock()
		c.conns[conn] = true
		c.mu.Unlock()
	}
	return conn, err
}

func (c *connTracker) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.conns {
		_ = conn.Close()
	}
}

// wsClient is a ComfyUI websocket client of the gateway.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

// wsFrame is one frame a wsClient read.
type wsFrame struct {
	Binary bool
	Type   string
	Data   map[string]any
}

// dialWS opens the gateway's /ws?clientId=client.
func dialWS(t *testing.T, gw, client string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/ws?clientId="+client, nil)
	require.NoError(t, err)
	c.SetReadLimit(wsReadLimit)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, conn: c}
}

// next reads one frame, failing the test after waitBound.
func (c *wsClient) next() wsFrame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), waitBound)
	defer cancel()
	typ, b, err := c.conn.Read(ctx)
	require.NoError(c.t, err)
	if typ == websocket.MessageBinary {
		return wsFrame{Binary: true}
	}
	var f wsFrame
	require.NoError(c.t, json.Unmarshal(b, &f), string(b))
	return f
}

func (f wsFrame) promptID() string { s, _ := f.Data["prompt_id"].(string); return s }

// done reports whether f is the executing frame with node null of a prompt.
func (f wsFrame) done() bool {
	node, has := f.Data["node"]
	return f.Type == "executing" && has && node == nil
}

// queueRemaining reads a status frame's queue_remaining (-1 if none).
func (f wsFrame) queueRemaining() int {
	st, _ := f.Data["status"].(map[string]any)
	ei, _ := st["exec_info"].(map[string]any)
	n, ok := ei["queue_remaining"].(float64)
	if !ok {
		return -1
	}
	return int(n)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// decodeImages reads an executed frame's output.images.
func decodeImages(t *testing.T, output any) []historyImage {
	t.Helper()
	b, err := json.Marshal(output)
	require.NoError(t, err)
	var out struct {
		Images []historyImage `json:"images"`
	}
	require.NoError(t, json.Unmarshal(b, &out))
	return out.Images
}
