package gateway

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInterruptByPromptStopsItOnItsMachineOrEndsItInLine(t *testing.T) {
	e := newComfyCluster(t, 1, nil, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })

	st, code := promptState(t, gw, "no-such-prompt")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "unknown", st.State)

	short, _ := submitWith(t, gw, promptBody(2, 1), nil) // gives the line a job time
	done := waitState(t, gw, short, "done")
	assert.Equal(t, "success", done.StatusStr)
	assert.Equal(t, "m1", done.Node)

	long, _ := submitWith(t, gw, modelPrompt(longSteps, 2, "a", "x.safetensors"), nil)
	m := waitRunningAt(t, e, gw, long)
	run, _ := promptState(t, gw, long)
	require.NotNil(t, run.GPU)
	assert.Equal(t, 0, *run.GPU)
	assert.NotNil(t, run.Since)

	queued, _ := submitWith(t, gw, promptBody(2, 3), nil)
	wst := waitState(t, gw, queued, "waiting")
	require.NotNil(t, wst.Position)
	assert.Equal(t, int64(1), *wst.Position)
	require.NotNil(t, wst.EstimatedStartSeconds, "a job time is known")
	assert.Positive(t, *wst.EstimatedStartSeconds)

	code, _, body := post(t, gw+"/interrupt", `{"prompt_id":"`+queued+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	ended := waitState(t, gw, queued, "done")
	assert.Equal(t, "error", ended.StatusStr)
	str, kinds := historyStatus(t, gw, queued)
	assert.Equal(t, "error", str)
	assert.Contains(t, kinds, "execution_interrupted")

	code, _, body = post(t, gw+"/interrupt", `{"prompt_id":"`+long+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "error", waitState(t, gw, long, "done").StatusStr)
	_, kinds = historyStatus(t, gw, long)
	assert.Contains(t, kinds, "execution_interrupted")

	c := m.comfy.Counters()
	assert.Equal(t, int64(2), c.Run, "the prompt interrupted in line never ran")
	assert.Equal(t, int64(1), c.Interrupted)
}

func TestInterruptByClientStopsOnlyThatClientsRunningPrompts(t *testing.T) {
	e := newComfyCluster(t, 3, nil, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "comfyui") == 3 })
	a1, _ := submitWith(t, gw, modelPrompt(longSteps, 1, "alice", "x"), nil)
	a2, _ := submitWith(t, gw, modelPrompt(longSteps, 2, "alice", "x"), nil)
	b1, _ := submitWith(t, gw, modelPrompt(longSteps, 3, "bob", "x"), nil)
	for _, id := range []string{a1, a2, b1} {
		waitRunningAt(t, e, gw, id)
	}
	code, _, body := post(t, gw+"/interrupt?clientId=alice", "")
	require.Equal(t, http.StatusOK, code, body)
	for _, id := range []string{a1, a2} {
		assert.Equal(t, "error", waitState(t, gw, id, "done").StatusStr)
	}
	st, _ := promptState(t, gw, b1)
	assert.Equal(t, "running", st.State, "bob's prompt runs on")

	// client_id in the body names the client too.
	code, _, body = post(t, gw+"/interrupt", `{"client_id":"bob"}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "error", waitState(t, gw, b1, "done").StatusStr)
	var interrupted int64
	for _, m := range e.machines {
		interrupted += m.comfy.Counters().Interrupted
	}
	assert.Equal(t, int64(3), interrupted)
}

func TestGlobalInterruptAndFreeNeedTheirFlags(t *testing.T) {
	e := newComfyCluster(t, 2, nil, nil)
	gw := e.gateways["comfyui"].URL
	open := e.addGateway(t, func(c *Config) { c.AllowGlobalInterrupt, c.AllowFree = true, true }).URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })

	code, _, body := post(t, gw+"/interrupt", "")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "--allow-global-interrupt")
	code, _, body = post(t, gw+"/api/free", `{"unload_models":true}`)
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "--allow-free")

	ids := []string{}
	for i := range 2 {
		id, _ := submitWith(t, gw, modelPrompt(longSteps, int64(i), "c"+fmt.Sprint(i), "x"), nil)
		ids = append(ids, id)
	}
	for _, id := range ids {
		waitRunningAt(t, e, gw, id)
	}
	code, _, body = post(t, open+"/interrupt", "{}")
	require.Equal(t, http.StatusOK, code, body)
	for _, id := range ids {
		assert.Equal(t, "error", waitState(t, gw, id, "done").StatusStr)
	}
	code, _, body = post(t, open+"/free", `{"unload_models":true,"free_memory":true}`)
	require.Equal(t, http.StatusOK, code, body)
	for _, m := range e.machines {
		waitFor(t, m.name+" freed its model", func() bool { return m.comfy.Counters().Frees == 1 })
		assert.Equal(t, int64(1), m.comfy.Counters().Interrupted)
	}
}

func TestInterruptReachesAPromptThatStartsOnlyAfterIt(t *testing.T) {
	e := newComfyCluster(t, 1, nil, nil)
	g, err := New(Config{Profile: "comfyui", Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(g.Close)
	shimURL := e.machines[0].front["comfyui"].URL
	// Two prompts of a local client at the machine's shim: the second
	// waits in the shim's line, unknown to the backend, as a dispatched
	// prompt is for a moment before it starts.
	withID := func(id string) string {
		b := modelPrompt(longSteps, 1, "local", "x")
		return b[:len(b)-1] + `,"prompt_id":"` + id + `"}`
	}
	first := postAsync(t, shimURL+"/prompt", withID("first"))
	waitFor(t, "the first prompt running", func() bool { return e.machines[0].comfy.Counters().Run == 1 })
	second := postAsync(t, shimURL+"/prompt", withID("second"))

	// The backend ignores this interrupt: it does not run "second" yet.
	require.NoError(t, g.postMachine(t.Context(), shimURL, "/interrupt", []byte(`{"prompt_id":"second"}`)))
	g.wg.Go(func() { g.reinterrupt("second", shimURL) })
	code, _, body := post(t, shimURL+"/interrupt", `{"prompt_id":"first"}`)
	require.Equal(t, http.StatusOK, code, body)
	for _, r := range []<-chan result{first, second} {
		res := <-r
		require.Equal(t, http.StatusOK, res.code, res.body)
	}
	waitFor(t, "both prompts ended interrupted", func() bool { return e.machines[0].comfy.Counters().Interrupted == 2 })
	assert.Equal(t, int64(2), e.machines[0].comfy.Counters().Run)
}
