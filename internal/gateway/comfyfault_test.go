package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/cluster"
)

func TestComfyMachineDyingMidPromptEndsItAsAnErrorNamingTheMachine(t *testing.T) {
	e := newCluster(t, 2, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	id, _ := submit(t, gw, promptBody(300, 0)) // 3 s on the GPU
	var ran *machine
	waitFor(t, "the prompt running", func() bool {
		for _, m := range e.machines {
			if st, err := m.gpu.Stats(); err == nil && len(st.Running) > 0 {
				ran = m
				return true
			}
		}
		return false
	})
	// The machine drops off: nobody reaches its shim, and its lease ends.
	ran.front["comfyui"].Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_ = ran.shims["comfyui"].Shutdown(ctx)
	cancel()
	var doc map[string]json.RawMessage
	waitFor(t, "the prompt ended in history", func() bool {
		doc = history(t, gw, id)
		return len(doc) == 1
	})
	var entry struct {
		Status struct {
			StatusStr string   `json:"status_str"`
			Messages  [][2]any `json:"messages"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal(doc[id], &entry))
	assert.Equal(t, "error", entry.Status.StatusStr)
	require.NotEmpty(t, entry.Status.Messages)
	assert.Equal(t, "execution_error", entry.Status.Messages[0][0])
	assert.Contains(t, entry.Status.Messages[0][1].(map[string]any)["exception_message"], ran.name+"/0/comfyui")
	var jobs int64
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		jobs += st.Jobs + int64(len(st.Running))
	}
	assert.Equal(t, int64(1), jobs, "the prompt was not run again elsewhere")
}

func TestComfyPromptsOfAGatewayThatIsGoneRunOnceThroughAnother(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	other := e.gateways["comfyui"].URL
	g, err := New(Config{Profile: "comfyui", Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()})
	require.NoError(t, err)
	g.Start()
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	running, _ := submit(t, srv.URL, promptBody(40, 0)) // 400 ms
	var waiting []string
	for i := range 3 {
		id, _ := submit(t, srv.URL, promptBody(1, int64(i+1)))
		waiting = append(waiting, id)
	}
	waitFor(t, "the first prompt running", func() bool { return len(getQueue(t, other).Running) == 1 })
	srv.Close()
	g.Close() // the gateway is gone; its prompts stay in Redis
	q := getQueue(t, other)
	assert.Equal(t, waiting, q.ids(q.Pending), "the prompts kept their places in line")
	for _, id := range append([]string{running}, waiting...) {
		waitFor(t, "prompt "+id+" done through the other gateway", func() bool { return len(history(t, other, id)) == 1 })
		var entry struct {
			Status struct {
				StatusStr string `json:"status_str"`
			} `json:"status"`
		}
		require.NoError(t, json.Unmarshal(history(t, other, id)[id], &entry))
		assert.Equal(t, "success", entry.Status.StatusStr, id)
	}
	st, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(4), st.Jobs, "every prompt ran once")
	assert.Zero(t, st.Overlaps)
}

func TestComfyPromptWhoseGatewayDiedMidDispatchIsDispatchedAgainOnce(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	ctx := t.Context()
	// A gateway (no lease: it died) matched its prompt with the GPU and
	// recorded the dispatch, but the shim never got it.
	m, err := e.store.Enqueue(ctx, "comfyui", "orphan-job", cluster.Turn{}, 0, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "assigned", m.State)
	const id = "0d6f6c1e-0000-4000-8000-000000000001"
	body := `{"prompt":` + string(promptJSON(t)) + `,"prompt_id":"` + id + `"}`
	_, err = e.store.AddPrompt(ctx, id, "orphan-job", "dead-gateway", []byte(body))
	require.NoError(t, err)
	require.NoError(t, e.store.PromptDispatched(ctx, id, m.GPU, m.URL))
	waitFor(t, "the prompt done through a live gateway", func() bool { return len(history(t, gw, id)) == 1 })
	st, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Jobs)
}

func promptJSON(t testing.TB) json.RawMessage {
	t.Helper()
	var doc struct {
		Prompt json.RawMessage `json:"prompt"`
	}
	require.NoError(t, json.Unmarshal([]byte(promptBody(1, 0)), &doc))
	return doc.Prompt
}

// TestComfyPromptWhoseGatewayDiedAsItsDispatchLandedIsFollowedOnce: a
// gateway (no lease: it died) put its prompt in line and dispatched it,
// and the shim started it, but the gateway died before Redis learnt that
// the prompt runs. The live gateway adopts the prompt as waiting and finds
// its job running from that other dispatch: nobody else answers for the
// prompt, so it follows it on its GPU to the end rather than leaving it
// pending for ever.
func TestComfyPromptWhoseGatewayDiedAsItsDispatchLandedIsFollowedOnce(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	ctx := t.Context()
	m, err := e.store.Enqueue(ctx, "comfyui", "landed-job", cluster.Turn{}, 0, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "assigned", m.State)
	const id = "0d6f6c1e-0000-4000-8000-000000000002"
	body := `{"prompt":` + string(promptJSON(t)) + `,"prompt_id":"` + id + `"}`
	// The dead gateway's dispatch, as it sent it.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/prompt", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderDispatch, "landed-job")
	req.Header.Set(HeaderDispatchToken, "dead-gateway.1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the shim took the dispatch")
	_, err = e.store.AddPrompt(ctx, id, "landed-job", "dead-gateway", []byte(body))
	require.NoError(t, err)

	waitFor(t, "the prompt done through the live gateway", func() bool { return len(history(t, gw, id)) == 1 })
	st, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Jobs, "it ran once: the live gateway did not run it again")
	waitFor(t, "its job gone from Redis", func() bool {
		_, found, err := e.store.Job(ctx, "landed-job")
		return err == nil && !found
	})
}
