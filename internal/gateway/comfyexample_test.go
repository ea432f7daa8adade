package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// historyImage is one output file of a history entry or executed event.
type historyImage struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// TestComfyWebsocketsAPIExampleOverThreeMachines follows ComfyUI's
// script_examples/websockets_api_example.py through the gateway: open the
// websocket with a clientId, POST /prompt with that client_id, read frames
// until executing with node null for the prompt, then GET /history/{id}
// and /view each output. Six prompts spread over three machines, the third
// of which joins after the socket opened; every machine writes
// ComfyUI_00001_.png.
func TestComfyWebsocketsAPIExampleOverThreeMachines(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	ms := []*comfyMachine{e.startComfyMachine(t, "m1"), e.startComfyMachine(t, "m2")}
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	const client = "5bd0a8d2c6a94a4fb1f4c1b1b6b0c0de"
	ws := dialWS(t, gw, client)
	first := ws.next()
	require.Equal(t, "status", first.Type)
	assert.Equal(t, client, first.Data["sid"], "the first status names the socket, as ComfyUI's")
	assert.Equal(t, 0, first.queueRemaining())
	ms = append(ms, e.startComfyMachine(t, "m3")) // joins after the socket opened
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "comfyui") == 3 })

	var ids []string
	for i := range 6 {
		id, _ := submit(t, gw, fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.TextToImagePrompt(8, int64(i)), client))
		ids = append(ids, id)
	}
	events := map[string][]string{}
	executed := map[string][]historyImage{}
	previews, maxRemaining, lastRemaining := 0, 0, -1
	done := map[string]bool{}
	for len(done) < len(ids) || lastRemaining != 0 {
		f := ws.next()
		switch {
		case f.Binary:
			previews++
			continue
		case f.Type == "status":
			lastRemaining = f.queueRemaining()
			maxRemaining = max(maxRemaining, lastRemaining)
			assert.Nil(t, f.Data["sid"], "only the first status names the socket")
			continue
		}
		id := f.promptID()
		require.Contains(t, ids, id, "a frame of another prompt: %+v", f)
		events[id] = append(events[id], f.Type)
		if f.Type == "executed" {
			imgs := decodeImages(t, f.Data["output"])
			executed[id] = append(executed[id], imgs...)
		}
		if f.done() {
			done[id] = true
		}
	}
	assert.Positive(t, previews, "binary previews are relayed")
	assert.Greater(t, maxRemaining, 1, "queue_remaining is the cluster's line, not a machine's own (at most 1)")

	ranOn := map[string]*comfyMachine{}
	for _, id := range ids {
		ev := events[id]
		for _, want := range []string{"execution_start", "executing", "progress", "executed", "execution_success"} {
			assert.Contains(t, ev, want, "prompt %s", id)
		}
		assert.Less(t, slices.Index(ev, "execution_start"), slices.Index(ev, "execution_success"), id)
		assert.Equal(t, "executing", ev[len(ev)-1], "executing with node null ends the prompt's frames")
		for _, m := range ms {
			if historyDone(t, m.backend, id) {
				ranOn[id] = m
			}
		}
		require.NotNil(t, ranOn[id], "no machine ran %s", id)
	}
	for _, m := range ms {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Positive(t, st.Jobs, "%s ran no prompt: the test proves nothing", m.name)
	}

	// /history and /view, as the example does.
	byName := map[string][]string{} // filename -> subfolders handed out
	for _, id := range ids {
		var entry struct {
			Outputs map[string]struct {
				Images []historyImage `json:"images"`
			} `json:"outputs"`
		}
		doc := history(t, gw, id)
		require.Contains(t, doc, id)
		require.NoError(t, jsonUnmarshal(doc[id], &entry))
		imgs := entry.Outputs["9"].Images
		require.Len(t, imgs, 1)
		assert.Equal(t, imgs, executed[id], "executed and /history hand out the same names")
		for _, img := range imgs {
			byName[img.Filename] = append(byName[img.Filename], img.Subfolder)
			m := ranOn[id]
			before := len(m.served())
			q := url.Values{"filename": {img.Filename}, "subfolder": {img.Subfolder}, "type": {img.Type}}
			resp, err := http.Get(gw + "/view?" + q.Encode())
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", q.Encode(), b)
			assert.Equal(t, "\x89PNG", string(b[:4]))
			served := m.served()
			require.Len(t, served, before+1, "%s served %s", m.name, q.Encode())
			assert.Equal(t, "|"+img.Filename, served[before], "the machine got its own name")
		}
	}
	require.Len(t, byName["ComfyUI_00001_.png"], len(ms), "every machine wrote ComfyUI_00001_.png: %v", byName)
	subs := byName["ComfyUI_00001_.png"]
	slices.Sort(subs)
	assert.Len(t, slices.Compact(subs), len(ms), "and each got its own name")
}
