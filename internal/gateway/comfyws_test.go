package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/fakecomfy"
)

func TestComfyWebsocketHearsAboutTheClientsPromptsOnEveryMachine(t *testing.T) {
	e := newCluster(t, 2, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/ws?clientId=test", nil)
	require.NoError(t, err)
	defer c.CloseNow()
	want := map[string]bool{}
	for i := range 4 { // promptBody's client_id is "test"
		id, _ := submit(t, gw, promptBody(10, int64(i)))
		want[id] = true
	}
	ended := map[string]bool{}
	for len(ended) < len(want) {
		_, b, err := c.Read(ctx)
		require.NoError(t, err, "ended %d of %d", len(ended), len(want))
		var msg struct {
			Type string `json:"type"`
			Data struct {
				Node     *string `json:"node"`
				PromptID string  `json:"prompt_id"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(b, &msg))
		if msg.Type == "executing" && msg.Data.Node == nil && want[msg.Data.PromptID] {
			ended[msg.Data.PromptID] = true
		}
	}
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Positive(t, st.Jobs, "%s ran no prompt: the test proves nothing", m.name)
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestComfyWebsocketReconnectGetsTheCurrentExecuting(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	const client = "again"
	ws := dialWS(t, gw, client)
	require.Equal(t, "status", ws.next().Type)
	id, _ := submit(t, gw, fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.TextToImagePrompt(150, 1), client)) // 1.5 s
	for {
		f := ws.next()
		if f.Type == "executing" && f.Data["node"] == "3" && f.promptID() == id {
			break // the KSampler runs
		}
	}
	require.NoError(t, ws.conn.Close(websocket.StatusNormalClosure, ""))

	again := dialWS(t, gw, client)
	f := again.next()
	require.Equal(t, "status", f.Type)
	assert.Equal(t, client, f.Data["sid"])
	assert.Equal(t, 1, f.queueRemaining(), "the running prompt")
	f = again.next()
	assert.Equal(t, "executing", f.Type, "the current executing comes next, as ComfyUI sends it")
	assert.Equal(t, "3", f.Data["node"])
	assert.Equal(t, id, f.promptID())
	var seen []string
	for f = again.next(); !f.done(); f = again.next() {
		if !f.Binary && f.Type != "status" {
			seen = append(seen, f.Type)
		}
	}
	assert.Equal(t, id, f.promptID())
	assert.Contains(t, seen, "progress", "the prompt's events go on reaching the new socket")
	assert.Contains(t, seen, "execution_success")
}

func TestComfyWebsocketMachineKilledMidStreamGetsAnErrorAndTheSocketStays(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	ms := []*comfyMachine{e.startComfyMachine(t, "m1"), e.startComfyMachine(t, "m2")}
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	const client = "killed"
	ws := dialWS(t, gw, client)
	require.Equal(t, "status", ws.next().Type)
	body := func(steps int, seed int64) string {
		return fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.TextToImagePrompt(steps, seed), client)
	}
	id, _ := submit(t, gw, body(500, 1)) // 5 s
	for f := ws.next(); f.Type != "progress" || f.promptID() != id; f = ws.next() {
	}
	var victim, survivor *comfyMachine
	for _, m := range ms {
		if st, err := m.gpu.Stats(); err == nil && len(st.Running) > 0 {
			victim = m
		} else {
			survivor = m
		}
	}
	require.NotNil(t, victim, "no machine runs the prompt")
	require.NotNil(t, survivor)
	victim.kill(t)

	var failure map[string]any
	for f := ws.next(); !f.done() || f.promptID() != id; f = ws.next() {
		require.NotEqual(t, "execution_success", f.Type)
		if f.Type == "execution_error" && f.promptID() == id {
			failure = f.Data
		}
	}
	require.NotNil(t, failure, "execution_error before the prompt's last executing")
	assert.Contains(t, failure["exception_message"], victim.name+"/0/comfyui", "the error names the machine")

	// The socket stays open: the next prompt runs on the survivor and is heard.
	next, _ := submit(t, gw, body(3, 2))
	var seen []string
	for f := ws.next(); !f.done() || f.promptID() != next; f = ws.next() {
		if f.promptID() == next {
			seen = append(seen, f.Type)
		}
	}
	assert.Contains(t, seen, "execution_success")
	assert.True(t, historyDone(t, survivor.backend, next), "the survivor ran it")
}

func TestComfyWebsocketOnOneGatewayHearsPromptsPostedToAnother(t *testing.T) {
	e := newCluster(t, 2, []string{"comfyui"}, nil)
	other, err := New(Config{Profile: "comfyui", Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()})
	require.NoError(t, err)
	other.Start()
	srv := httptest.NewServer(other)
	t.Cleanup(func() { srv.Close(); other.Close() })
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	const client = "split"
	ws := dialWS(t, e.gateways["comfyui"].URL, client)
	require.Equal(t, "status", ws.next().Type)
	want := map[string]bool{}
	for i := range 3 {
		id, _ := submit(t, srv.URL, fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.TextToImagePrompt(3, int64(i)), client))
		want[id] = true
	}
	succeeded := map[string]bool{}
	for done := 0; done < len(want); {
		f := ws.next()
		require.False(t, !f.Binary && f.Type != "status" && !want[f.promptID()], "a frame of another prompt: %+v", f)
		if f.Type == "execution_success" {
			succeeded[f.promptID()] = true
		}
		if f.done() {
			done++
		}
	}
	assert.Len(t, succeeded, len(want))
}

func TestComfyWebsocketHearsTheRestOfAPromptWhoseGatewayIsGone(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gone, err := New(Config{Profile: "comfyui", Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()})
	require.NoError(t, err)
	gone.Start()
	srv := httptest.NewServer(gone)
	t.Cleanup(func() { srv.Close(); gone.Close() })
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	const client = "orphan"
	ws := dialWS(t, e.gateways["comfyui"].URL, client)
	require.Equal(t, "status", ws.next().Type)
	id, _ := submit(t, srv.URL, fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.TextToImagePrompt(150, 1), client)) // 1.5 s
	for f := ws.next(); f.Type != "progress" || f.promptID() != id; f = ws.next() {
	}
	srv.Close()
	gone.Close() // its relay ends; the other gateway adopts the prompt
	var after []string
	for f := ws.next(); !f.done() || f.promptID() != id; f = ws.next() {
		if f.promptID() == id {
			after = append(after, f.Type)
		}
	}
	assert.Contains(t, after, "progress", "the adopting gateway relays the rest")
	assert.Contains(t, after, "execution_success")
}

func TestComfyWebsocketWithRedisDownIsRefusedWithin2sNamingRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "redis://" + ln.Addr().String() + "/0"
	require.NoError(t, ln.Close()) // nothing listens there now
	rdb, err := cluster.Dial(down)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	g, err := New(Config{Profile: "comfyui", Store: cluster.NewStore(rdb), Logger: quietLogger()})
	require.NoError(t, err)
	srv := httptestServer(t, g)
	t.Cleanup(g.Close)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv, "http")+"/ws?clientId=x", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Less(t, time.Since(start), 2500*time.Millisecond)
	b, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(b), "Redis")
}

func TestComfyWebsocketsOfAGatewayShareOneRedisConnection(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	clients := func() int {
		list, err := e.store.Client().ClientList(t.Context()).Result()
		require.NoError(t, err)
		return strings.Count(list, "\n")
	}
	first := dialWS(t, gw, "c0")
	require.Equal(t, "status", first.next().Type)
	before := clients()
	for i := 1; i <= 20; i++ {
		ws := dialWS(t, gw, fmt.Sprintf("c%d", i))
		require.Equal(t, "status", ws.next().Type)
	}
	assert.LessOrEqual(t, clients()-before, 2, "20 more sockets, no more Redis connections (but the pool's)")
}

func TestComfyWebsocketHearsPromptsWithoutAClientIDAsComfyUIBroadcastsThem(t *testing.T) {
	e := newCluster(t, 2, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/ws", nil) // no clientId: the gateway names it
	require.NoError(t, err)
	defer c.CloseNow()
	ws := &wsClient{t: t, conn: c}
	first := ws.next()
	require.Equal(t, "status", first.Type)
	require.NotEmpty(t, first.Data["sid"])
	want := map[string]bool{}
	for i := range 4 {
		id, _ := submit(t, gw, fmt.Sprintf(`{"prompt":%s}`, fakecomfy.TextToImagePrompt(3, int64(i))))
		want[id] = true
	}
	succeeded := map[string]bool{}
	for done := 0; done < len(want); {
		f := ws.next()
		if f.Type == "execution_success" && want[f.promptID()] {
			succeeded[f.promptID()] = true
		}
		if f.done() && want[f.promptID()] {
			done++
		}
	}
	assert.Len(t, succeeded, len(want))
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Positive(t, st.Jobs, "%s ran no prompt: the test proves nothing", m.name)
	}
}
