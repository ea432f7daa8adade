package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// TestComfyFrontEndCallsWorkThroughTheGatewayOverThreeMachines makes the
// calls ComfyUI's browser front end makes, all under /api as it does: the
// ones at page load, queueing a prompt with the workflow in extra_pnginfo,
// following it on the websocket, showing its image, then the queue and
// history side panels' calls (delete a pending prompt, clear history).
func TestComfyFrontEndCallsWorkThroughTheGatewayOverThreeMachines(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	for i := 1; i <= 3; i++ {
		e.startComfyMachine(t, fmt.Sprintf("m%d", i))
	}
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "comfyui") == 3 })

	// Page load.
	resp, err := http.Get(gw + "/")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the front end's index")
	for _, path := range []string{"/api/settings", "/api/userdata?dir=workflows&recurse=true&split=false&full_info=true",
		"/api/object_info", "/api/embeddings", "/api/extensions", "/api/system_stats", "/api/queue", "/api/history?max_items=64"} {
		var doc any
		assert.Equal(t, http.StatusOK, getJSONDoc(t, gw+path, &doc), path)
	}
	var info map[string]any
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/api/object_info", &info))
	assert.Contains(t, info, "KSampler", "the node list the graph editor is built from")

	// Queue prompts with the front end's body and follow them.
	const client = "0f6c2b9e1a7d4c3b8e5f2a1d9c8b7a6e"
	ws := dialWS(t, gw, client)
	require.Equal(t, "status", ws.next().Type)
	workflow := `{"last_node_id":9,"nodes":[],"links":[],"version":0.4}`
	var ids []string
	for i := range 4 {
		body := fmt.Sprintf(`{"client_id":%q,"prompt":%s,"extra_data":{"extra_pnginfo":{"workflow":%s}}}`,
			client, fakecomfy.TextToImagePrompt(6, int64(i)), workflow)
		code, _, b := post(t, gw+"/api/prompt", body)
		require.Equal(t, http.StatusOK, code, b)
		var doc struct {
			PromptID   string         `json:"prompt_id"`
			Number     int64          `json:"number"`
			NodeErrors map[string]any `json:"node_errors"`
		}
		require.NoError(t, json.Unmarshal([]byte(b), &doc), b)
		require.NotEmpty(t, doc.PromptID)
		assert.Empty(t, doc.NodeErrors)
		ids = append(ids, doc.PromptID)
	}
	images := map[string][]historyImage{}
	for len(images) < len(ids) {
		f := ws.next()
		if f.Type == "executed" {
			images[f.promptID()] = decodeImages(t, f.Data["output"])
		}
	}
	for _, id := range ids {
		require.Len(t, images[id], 1, id)
		img := images[id][0]
		q := url.Values{"filename": {img.Filename}, "subfolder": {img.Subfolder}, "type": {img.Type}, "rand": {"0.5"}}
		resp, err := http.Get(gw + "/api/view?" + q.Encode())
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", q.Encode(), b)
		assert.Equal(t, "\x89PNG", string(b[:4]), "the image the front end shows")
	}
	waitFor(t, "every prompt in history", func() bool {
		var h map[string]json.RawMessage
		return getJSONDoc(t, gw+"/api/history?max_items=64", &h) == http.StatusOK && len(h) == len(ids)
	})
	var entry map[string]struct {
		Prompt []json.RawMessage `json:"prompt"`
	}
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/api/history/"+ids[0], &entry))
	require.Len(t, entry[ids[0]].Prompt, 5, "ComfyUI's history prompt tuple")
	assert.Contains(t, string(entry[ids[0]].Prompt[3]), `"workflow"`, "the workflow the front end reloads from history")

	// The queue panel deletes a pending prompt; the history panel clears.
	for _, m := range e.machines {
		release := holdLock(t, m)
		defer release()
	}
	waitFor(t, "every GPU held", func() bool { return e.freeCount(t, "comfyui") == 0 })
	pending, _ := submit(t, gw, fmt.Sprintf(`{"client_id":%q,"prompt":%s}`, client, fakecomfy.TextToImagePrompt(6, 9)))
	q := getQueue(t, gw)
	require.Contains(t, q.ids(q.Pending), pending)
	code, _, b := post(t, gw+"/api/queue", fmt.Sprintf(`{"delete":[%q]}`, pending))
	require.Equal(t, http.StatusOK, code, b)
	q = getQueue(t, gw)
	assert.NotContains(t, q.ids(q.Pending), pending, "deleted from the cluster's line")
	code, _, b = post(t, gw+"/api/history", `{"clear":true}`)
	require.Equal(t, http.StatusOK, code, b)
	var h map[string]json.RawMessage
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/api/history?max_items=64", &h))
	assert.Empty(t, h, "history cleared")
}
