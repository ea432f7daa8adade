package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// queueDoc is ComfyUI's GET /queue.
type queueDoc struct {
	Running [][]json.RawMessage `json:"queue_running"`
	Pending [][]json.RawMessage `json:"queue_pending"`
}

func getQueue(t testing.TB, base string) queueDoc {
	t.Helper()
	var q queueDoc
	require.Equal(t, http.StatusOK, getJSONDoc(t, base+"/queue", &q))
	return q
}

func getJSONDoc(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v), string(b))
	return resp.StatusCode
}

func (q queueDoc) ids(list [][]json.RawMessage) []string {
	out := []string{}
	for _, t := range list {
		var id string
		if len(t) > 1 {
			_ = json.Unmarshal(t[1], &id)
		}
		out = append(out, id)
	}
	return out
}

// submit posts a prompt through the gateway and returns its id and number.
func submit(t testing.TB, base, body string) (string, int64) {
	t.Helper()
	code, _, b := post(t, base+"/prompt", body)
	require.Equal(t, http.StatusOK, code, b)
	var doc struct {
		PromptID string `json:"prompt_id"`
		Number   int64  `json:"number"`
	}
	require.NoError(t, json.Unmarshal([]byte(b), &doc))
	require.NotEmpty(t, doc.PromptID)
	return doc.PromptID, doc.Number
}

// history returns a prompt's /history/{id} through the gateway.
func history(t testing.TB, base, id string) map[string]json.RawMessage {
	t.Helper()
	var doc map[string]json.RawMessage
	require.Equal(t, http.StatusOK, getJSONDoc(t, base+"/history/"+id, &doc))
	return doc
}

func TestComfyQueueShowsTheLineAndWhatRunsAndDeleteClearActOnTheLine(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	first, n0 := submit(t, gw, promptBody(40, 0)) // 400 ms on the GPU
	var waiting []string
	last := n0
	for i := range 4 {
		id, n := submit(t, gw, promptBody(1, int64(i+1)))
		assert.Greater(t, n, last, "numbers follow the arrival order")
		last = n
		waiting = append(waiting, id)
	}
	var q queueDoc
	waitFor(t, "the first prompt running on its machine", func() bool {
		q = getQueue(t, gw)
		return len(q.Running) == 1
	})
	assert.Equal(t, []string{first}, q.ids(q.Running))
	assert.Equal(t, waiting, q.ids(q.Pending), "the cluster's line, oldest first")
	for _, id := range waiting {
		assert.Empty(t, history(t, gw, id), "a queued prompt's history is {} as in ComfyUI")
	}
	var remaining struct {
		ExecInfo struct {
			QueueRemaining int `json:"queue_remaining"`
		} `json:"exec_info"`
	}
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/prompt", &remaining))
	assert.Equal(t, 5, remaining.ExecInfo.QueueRemaining, "one running and four in the cluster's line")

	code, _, body := post(t, gw+"/queue", `{"delete":["`+waiting[1]+`","`+first+`"]}`)
	require.Equal(t, http.StatusOK, code, body)
	q = getQueue(t, gw)
	assert.Equal(t, []string{waiting[0], waiting[2], waiting[3]}, q.ids(q.Pending))
	assert.Equal(t, []string{first}, q.ids(q.Running), "delete leaves a running prompt alone")

	code, _, body = post(t, gw+"/queue", `{"clear":true}`)
	require.Equal(t, http.StatusOK, code, body)
	q = getQueue(t, gw)
	assert.Empty(t, q.Pending)

	waitFor(t, "the first prompt done", func() bool { return len(history(t, gw, first)) == 1 })
	waitFor(t, "the GPU free again", func() bool { return e.freeCount(t, "comfyui") == 1 })
	n, err := e.store.Client().ZCard(t.Context(), "gpulock:line").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "deleted prompts did not go back in line")
	st, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Jobs, "only the prompt that was not deleted ran")
	for _, id := range waiting {
		assert.Empty(t, history(t, gw, id))
	}
}

func TestComfyViewFetchesFromTheMachineThatMadeTheFile(t *testing.T) {
	e := newCluster(t, 2, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	var ids []string
	for i := range 4 {
		body := strings.Replace(promptBody(5, int64(i)), `"filename_prefix": "ComfyUI"`, `"filename_prefix": "p`+string(rune('0'+i))+`"`, 1)
		id, _ := submit(t, gw, body)
		ids = append(ids, id)
	}
	for _, id := range ids {
		waitFor(t, "prompt "+id+" done", func() bool { return len(history(t, gw, id)) == 1 })
		var entry struct {
			Outputs map[string]struct {
				Images []struct {
					Filename  string `json:"filename"`
					Subfolder string `json:"subfolder"`
				} `json:"images"`
			} `json:"outputs"`
			Status struct {
				StatusStr string `json:"status_str"`
			} `json:"status"`
		}
		require.NoError(t, json.Unmarshal(history(t, gw, id)[id], &entry))
		assert.Equal(t, "success", entry.Status.StatusStr)
		require.Len(t, entry.Outputs["9"].Images, 1)
		name, sub := entry.Outputs["9"].Images[0].Filename, entry.Outputs["9"].Images[0].Subfolder
		for _, sub := range []string{sub, ""} { // the name handed out, and the machine's own
			resp, err := http.Get(gw + "/view?filename=" + name + "&subfolder=" + url.QueryEscape(sub) + "&type=output")
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, name)
		}
	}
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Positive(t, st.Jobs, "%s ran no prompt: the test proves nothing", m.name)
	}
}

func TestComfyPromptAMachineRefusesEndsAsAFailedPromptInHistory(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	// Only the machine checks values: steps 0 passes the gateway's checks.
	id, _ := submit(t, gw, promptBody(0, 0))
	var doc map[string]json.RawMessage
	waitFor(t, "the refused prompt in history", func() bool {
		doc = history(t, gw, id)
		return len(doc) == 1
	})
	var entry struct {
		Status struct {
			StatusStr string   `json:"status_str"`
			Completed bool     `json:"completed"`
			Messages  [][2]any `json:"messages"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal(doc[id], &entry))
	assert.Equal(t, "error", entry.Status.StatusStr)
	assert.False(t, entry.Status.Completed)
	require.NotEmpty(t, entry.Status.Messages)
	assert.Equal(t, "execution_error", entry.Status.Messages[0][0])
	assert.Contains(t, entry.Status.Messages[0][1].(map[string]any)["exception_message"], "steps must be an integer")
	// The GPU is free again and the next prompt runs.
	good, _ := submit(t, gw, promptBody(1, 1))
	waitFor(t, "the next prompt done", func() bool { return len(history(t, gw, good)) == 1 })
}

func TestComfyHistoryListsEveryMachinesPromptsInTheOrderTheyEnded(t *testing.T) {
	// Plain dispatch: one after another, the prompts (all of one model)
	// take the GPU free longest, so both machines run some; model-aware
	// dispatch would keep them on the GPU that has their model.
	e := newCluster(t, 2, []string{"comfyui"}, func(c *Config) { c.PlainDispatch = true })
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	var ids []string
	for i := range 4 {
		id, _ := submit(t, gw, promptBody(1, int64(i)))
		ids = append(ids, id)
		waitFor(t, "prompt "+id+" done", func() bool { return len(history(t, gw, id)) == 1 })
	}
	resp, err := http.Get(gw + "/history")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	_, err = dec.Token() // {
	require.NoError(t, err)
	var order []string
	for dec.More() {
		k, err := dec.Token()
		require.NoError(t, err)
		order = append(order, k.(string))
		var v json.RawMessage
		require.NoError(t, dec.Decode(&v))
	}
	assert.Equal(t, ids, order, "all four, from both machines, in the order they ended")
	var last map[string]json.RawMessage
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/history?max_items=1", &last))
	assert.Contains(t, last, ids[3])
	assert.Len(t, last, 1)

	code, _, body := post(t, gw+"/history", `{"delete":["`+ids[0]+`"]}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Empty(t, history(t, gw, ids[0]))
	code, _, body = post(t, gw+"/history", `{"clear":true}`)
	require.Equal(t, http.StatusOK, code, body)
	var all map[string]json.RawMessage
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/history", &all))
	assert.Empty(t, all)
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Positive(t, st.Jobs, "%s ran no prompt: the test proves nothing", m.name)
	}
}

func TestComfyPromptsThatCannotRunAreRefusedAtOnceWithComfyUIsShapes(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	good := promptBody(1, 0)
	for _, c := range []struct{ name, body, typ, nodeError string }{
		{"no prompt", `{"client_id":"x"}`, "no_prompt", ""},
		{"unknown class", strings.Replace(good, `"class_type": "VAEDecode"`, `"class_type": "NoSuchNode"`, 1), "invalid_prompt", ""},
		{"no class", strings.Replace(good, `"class_type": "VAEDecode", `, ``, 1), "invalid_prompt", ""},
		{"no output", strings.Replace(good, `"class_type": "SaveImage"`, `"class_type": "VAEDecode"`, 1), "prompt_no_outputs", ""},
		{"missing input", strings.Replace(good, `"text": "a red fox", `, ``, 1), "prompt_outputs_failed_validation", "6"},
	} {
		code, _, body := post(t, gw+"/prompt", c.body)
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", c.name, body)
		var doc struct {
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
			NodeErrors map[string]json.RawMessage `json:"node_errors"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &doc), c.name)
		assert.Equal(t, c.typ, doc.Error.Type, c.name)
		assert.NotEmpty(t, doc.Error.Message, c.name)
		if c.nodeError != "" {
			assert.Contains(t, doc.NodeErrors, c.nodeError, c.name)
			assert.Contains(t, string(doc.NodeErrors[c.nodeError]), "required_input_missing", c.name)
		}
	}
	n, err := e.store.Client().ZCard(t.Context(), "gpulock:cactive").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "no refused prompt was queued")
	st, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Jobs)
	id, _ := submit(t, gw, good)
	waitFor(t, "a good prompt still runs", func() bool { return len(history(t, gw, id)) == 1 })
}
