package gateway

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// TestComfyWebsocketOpenedLateHearsTheClientsRunningPrompts queues two
// prompts of a client that has no socket open (so their dispatches relay
// nothing), on two machines, and opens the client's sockets only once
// both run, one on each of two gateways: each socket gets each prompt's
// events from then on, the current executing and its end once, as
// ComfyUI sends a client that reconnects (one relay per prompt, claimed in
// Redis, however many sockets open).
func TestComfyWebsocketOpenedLateHearsTheClientsRunningPrompts(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gwA := e.gateways["comfyui"].URL
	gwB := e.addGateway(t, nil).URL
	e.startComfyMachine(t, "m1")
	e.startComfyMachine(t, "m2")
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	const client = "late"
	ids := map[string]bool{}
	for i := range 2 {
		id, _ := submit(t, gwA, fmt.Sprintf(`{"client_id":%q,"prompt":%s}`, client, fakecomfy.TextToImagePrompt(150, int64(i)))) // 1.5 s
		ids[id] = true
	}
	for id := range ids {
		waitState(t, gwA, id, cluster.PromptRunning)
	}
	var sockets []*wsClient
	for _, gw := range []string{gwA, gwB} {
		ws := dialWS(t, gw, client)
		require.Equal(t, "status", ws.next().Type)
		sockets = append(sockets, ws)
	}
	for i, ws := range sockets {
		progress := map[string]int{}
		last := map[string]float64{}
		ended := map[string]int{}
		for len(ended) < len(ids) {
			f := ws.next()
			if !ids[f.promptID()] {
				continue
			}
			if _, seen := last[f.promptID()]; !seen {
				assert.True(t, f.Type == "executing" && f.Data["node"] != nil, "socket %d: %s starts with the current executing, got %s", i, f.promptID(), f.Type)
				last[f.promptID()] = 0
			}
			switch {
			case f.Type == "progress":
				progress[f.promptID()]++
				v, _ := f.Data["value"].(float64)
				assert.Greater(t, v, last[f.promptID()], "socket %d: progress of %s goes up, once each (one relay)", i, f.promptID())
				last[f.promptID()] = v
			case f.done():
				ended[f.promptID()]++
			}
		}
		for id := range ids {
			assert.Positive(t, progress[id], "socket %d, %s: the progress of a prompt that ran before the socket opened", i, id)
			assert.Equal(t, 1, ended[id], "socket %d: %s ends once", i, id)
		}
	}
}

// TestWithPromptIDNamesTheRelaysPrompt checks the rewrite of ComfyUI's
// current executing for a socket that opens late, which names no prompt.
func TestWithPromptIDNamesTheRelaysPrompt(t *testing.T) {
	got := withPromptID([]byte(`{"type":"executing","data":{"node":"3"}}`), "p1")
	assert.JSONEq(t, `{"type":"executing","data":{"node":"3","prompt_id":"p1"}}`, string(got))
	assert.Equal(t, "not json", string(withPromptID([]byte("not json"), "p1")), "left as it is")
}
