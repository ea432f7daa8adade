package fakecomfy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// Timing constants of the tests.
const (
	testStep    = 2 * time.Millisecond // one sampling step
	waitTimeout = 5 * time.Second      // deadline for any awaited event
	pollTick    = 2 * time.Millisecond
	longSteps   = 5000 // a prompt that runs until interrupted
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a fake ComfyUI on a loopback httptest server with its own GPU.
type fixture struct {
	srv *Server
	ts  *httptest.Server
	gpu *simgpu.GPU
}

// newFixture starts a fake on a fresh 24 GiB simulated GPU.
func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	gpu, err := simgpu.Open(t.TempDir(), 0, simgpu.Options{TotalVRAM: 24 * simgpu.GiB, WorkingVRAM: 4 * simgpu.GiB})
	require.NoError(t, err)
	cfg := Config{GPU: gpu, StepDuration: testStep, ModelBytes: 6 * simgpu.GiB}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		ts.Close()
	})
	return &fixture{srv: srv, ts: ts, gpu: gpu}
}

// post sends body to path and returns the status and body.
func (f *fixture) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(f.ts.URL+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// getJSON decodes GET path into v and returns the status.
func (f *fixture) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get(f.ts.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	return resp.StatusCode
}

// submit posts a prompt of steps steps and returns its id.
func (f *fixture) submit(t *testing.T, clientID, promptID string, steps int) string {
	t.Helper()
	body, err := json.Marshal(PromptRequest{Prompt: TextToImagePrompt(steps, 1), ClientID: clientID, PromptID: promptID})
	require.NoError(t, err)
	code, out := f.post(t, "/prompt", string(body))
	require.Equal(t, http.StatusOK, code, out)
	var resp PromptResponse
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	return resp.PromptID
}

// history returns GET /history/{id}.
func (f *fixture) history(t *testing.T, id string) map[string]historyEntry {
	t.Helper()
	var h map[string]historyEntry
	require.Equal(t, http.StatusOK, f.getJSON(t, "/history/"+id, &h))
	return h
}

// waitRunning waits until prompt id runs.
func (f *fixture) waitRunning(t *testing.T, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		return f.srv.running != nil && f.srv.running.promptID == id && f.srv.running.node != ""
	}, waitTimeout, pollTick)
}

// waitHistory waits until prompt id is in the history and returns its entry.
func (f *fixture) waitHistory(t *testing.T, id string) historyEntry {
	t.Helper()
	var e historyEntry
	require.Eventually(t, func() bool {
		h := f.history(t, id)
		e = h[id]
		return len(h) == 1
	}, waitTimeout, pollTick)
	return e
}

// wsConn is a test websocket client.
type wsConn struct {
	t    *testing.T
	conn *websocket.Conn
}

// dial opens /ws?clientId=id and reads the connect status frame.
func (f *fixture) dial(t *testing.T, id string) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.ts.URL, "http")+"/ws?clientId="+id, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.CloseNow() })
	c := &wsConn{t: t, conn: conn}
	first := c.next()
	require.Equal(t, "status", first.Type)
	require.Equal(t, id, first.Data["sid"])
	return c
}

// next reads one frame, failing the test after waitTimeout.
func (c *wsConn) next() Frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	typ, data, err := c.conn.Read(ctx)
	require.NoError(c.t, err)
	require.Equal(c.t, websocket.MessageText, typ)
	var fr Frame
	require.NoError(c.t, json.NewDecoder(bytes.NewReader(data)).Decode(&fr))
	return fr
}

// until reads frames up to and including the first that stop accepts.
func (c *wsConn) until(stop func(Frame) bool) []Frame {
	c.t.Helper()
	var frames []Frame
	for {
		fr := c.next()
		frames = append(frames, fr)
		if stop(fr) {
			return frames
		}
	}
}

// promptDone reports whether fr is the final executing frame of prompt id.
func promptDone(id string) func(Frame) bool {
	return func(fr Frame) bool {
		v, has := fr.Data["node"]
		return fr.Type == "executing" && has && v == nil && fr.Data["prompt_id"] == id
	}
}
