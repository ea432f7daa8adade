package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// longSteps makes a prompt that runs until it is interrupted (40 s).
const longSteps = 4000

// newComfyCluster starts n ComfyUI machines, their fakes changed by fake,
// and one gateway changed by gw.
func newComfyCluster(t testing.TB, n int, fake func(*fakecomfy.Config), gw func(*Config)) *clusterEnv {
	t.Helper()
	e := &clusterEnv{redis: redistest.Start(t), gateways: map[string]*httptest.Server{}, comfyConfig: fake}
	e.store = newStore(t, e.redis)
	for i := range n {
		e.machines = append(e.machines, e.startMachine(t, "m"+string(rune('1'+i)), []string{"comfyui"}))
	}
	e.gateways["comfyui"] = e.addGateway(t, gw)
	return e
}

// addGateway starts one more ComfyUI gateway on e's Redis.
func (e *clusterEnv) addGateway(t testing.TB, mod func(*Config)) *httptest.Server {
	t.Helper()
	cfg := Config{Profile: "comfyui", Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	require.NoError(t, err)
	g.Start()
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	return srv
}

// machineNamed returns e's machine called name.
func (e *clusterEnv) machineNamed(t testing.TB, name string) *machine {
	t.Helper()
	for _, m := range e.machines {
		if m.name == name {
			return m
		}
	}
	t.Fatalf("no machine %q", name)
	return nil
}

// modelPrompt is a POST /prompt body of client that loads ckpt.
func modelPrompt(steps int, seed int64, client, ckpt string) string {
	graph := strings.Replace(string(fakecomfy.TextToImagePrompt(steps, seed)), "v1-5-pruned-emaonly.safetensors", ckpt, 1)
	return fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, graph, client)
}

// submitWith posts a prompt body (with headers hdr) and returns its id and the
// response's headers.
func submitWith(t testing.TB, gw, body string, hdr map[string]string) (string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, gw+"/prompt", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var doc struct {
		PromptID string `json:"prompt_id"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	require.NotEmpty(t, doc.PromptID)
	return doc.PromptID, resp.Header
}

// promptState reads GET /gpulock/prompt/{id}.
func promptState(t testing.TB, gw, id string) (PromptStatus, int) {
	t.Helper()
	var st PromptStatus
	code := getJSONDoc(t, gw+PathPrompt+id, &st)
	return st, code
}

// waitState waits until prompt id is in state and returns its status.
func waitState(t testing.TB, gw, id, state string) PromptStatus {
	t.Helper()
	var st PromptStatus
	waitFor(t, "prompt "+id+" "+state, func() bool {
		st, _ = promptState(t, gw, id)
		return st.State == state
	})
	return st
}

// waitRunningAt waits until prompt id runs on its machine's backend (not
// only dispatched) and returns the machine.
func waitRunningAt(t testing.TB, e *clusterEnv, gw, id string) *machine {
	t.Helper()
	st := waitState(t, gw, id, "running")
	m := e.machineNamed(t, st.Node)
	waitFor(t, "prompt "+id+" running on "+m.name, func() bool {
		var q clusterQueue
		if err := getJSONInto(m.front["comfyui"].URL+"/queue", &q); err != nil {
			return false
		}
		for _, r := range q.Running {
			if tupleID(r) == id {
				return true
			}
		}
		return false
	})
	return m
}

func getJSONInto(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// historyStatus returns the status_str and message types of prompt id's
// entry in the gateway's /history/{id}.
func historyStatus(t testing.TB, gw, id string) (string, []string) {
	t.Helper()
	var doc map[string]struct {
		Status struct {
			StatusStr string              `json:"status_str"`
			Messages  [][]json.RawMessage `json:"messages"`
		} `json:"status"`
	}
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/history/"+id, &doc))
	e := doc[id]
	var kinds []string
	for _, m := range e.Status.Messages {
		var k string
		if len(m) > 0 && json.Unmarshal(m[0], &k) == nil {
			kinds = append(kinds, k)
		}
	}
	return e.Status.StatusStr, kinds
}

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

func TestStateRoutesStickToTheFirstMachine(t *testing.T) {
	e := newComfyCluster(t, 3, nil, nil)
	gw := e.gateways["comfyui"].URL
	other := e.addGateway(t, nil).URL
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "comfyui") == 3 })

	const wf = `{"nodes":[],"links":[]}`
	code, _, body := post(t, gw+"/api/userdata/workflows%2Fmine.json?overwrite=true", wf)
	require.Equal(t, http.StatusOK, code, body)
	code, _, body = post(t, gw+"/settings/Comfy.Theme", `"dark"`)
	require.Equal(t, http.StatusOK, code, body)
	for range 6 { // any gateway, again and again: always found
		for _, g := range []string{gw, other} {
			resp, err := http.Get(g + "/userdata/workflows%2Fmine.json")
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
			assert.Equal(t, wf, string(b))
			var list []string
			require.Equal(t, http.StatusOK, getJSONDoc(t, g+"/api/userdata?dir=workflows", &list))
			assert.Equal(t, []string{"mine.json"}, list)
			var settings map[string]any
			require.Equal(t, http.StatusOK, getJSONDoc(t, g+"/settings", &settings))
			assert.Equal(t, "dark", settings["Comfy.Theme"])
		}
	}
	// It lives on m1, the first live machine by name, and on no other.
	for _, m := range e.machines {
		resp, err := http.Get(m.front["comfyui"].URL + "/userdata/workflows%2Fmine.json")
		require.NoError(t, err)
		_ = resp.Body.Close()
		want := http.StatusNotFound
		if m.name == "m1" {
			want = http.StatusOK
		}
		assert.Equal(t, want, resp.StatusCode, m.name)
	}
}

func TestFrontIsHonouredOnlyAboveNormalPriority(t *testing.T) {
	e := newComfyCluster(t, 1, nil, func(c *Config) { c.Turns.PriorityHeader = true })
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	long, _ := submitWith(t, gw, modelPrompt(longSteps, 1, "a", "x"), nil)
	waitRunningAt(t, e, gw, long)
	first, h := submitWith(t, gw, modelPrompt(1, 2, "b", "x"), nil)
	assert.Empty(t, h.Get(HeaderFront), "no front asked, nothing said")
	second, _ := submitWith(t, gw, modelPrompt(1, 3, "c", "x"), nil)
	frontBody := func(seed int64, client string) string {
		b := modelPrompt(1, seed, client, "x")
		return b[:len(b)-1] + `,"front":true}`
	}
	ignored, h := submitWith(t, gw, frontBody(4, "d"), nil)
	assert.True(t, strings.HasPrefix(h.Get(HeaderFront), "ignored; "), h.Get(HeaderFront))
	honoured, h := submitWith(t, gw, frontBody(5, "e"), map[string]string{"X-GPULock-Priority": "high"})
	assert.Equal(t, "honoured", h.Get(HeaderFront))

	for id, want := range map[string]int64{honoured: 1, first: 2, second: 3, ignored: 4} {
		st, _ := promptState(t, gw, id)
		require.Equal(t, "waiting", st.State, id)
		require.NotNil(t, st.Position)
		assert.Equal(t, want, *st.Position, "place of %s", id)
	}
	code, _, body := post(t, gw+"/interrupt", `{"prompt_id":"`+long+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	// The GPU ran them in that order.
	var last time.Time
	for _, id := range []string{honoured, first, second, ignored} {
		st := waitState(t, gw, id, "done")
		require.NotNil(t, st.Since)
		assert.True(t, st.Since.After(last), "%s dispatched after the one before", id)
		last = *st.Since
	}
}

func TestModelAwareDispatchPrefersTheGPUWithTheModelButNeverWaitsForIt(t *testing.T) {
	e := newComfyCluster(t, 2, func(c *fakecomfy.Config) { c.ModelLoad = 5 * stepDuration }, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	where := map[string]map[string]bool{} // model -> nodes it ran on
	for round := range 3 {
		for _, model := range []string{"a", "b"} {
			waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
			id, _ := submitWith(t, gw, modelPrompt(1, int64(round), "c", model), nil)
			st := waitState(t, gw, id, "done")
			require.Equal(t, "success", st.StatusStr)
			if where[model] == nil {
				where[model] = map[string]bool{}
			}
			where[model][st.Node] = true
			last, err := e.store.LastModel(context.Background(), st.Node+"/0/comfyui")
			require.NoError(t, err)
			assert.Equal(t, model, last, "the GPU's last model is recorded")
		}
	}
	require.Len(t, where["a"], 1, "every a prompt ran on one GPU: %v", where)
	require.Len(t, where["b"], 1, "every b prompt ran on one GPU: %v", where)
	var nodeA string
	for n := range where["a"] {
		nodeA = n
	}
	assert.False(t, where["b"][nodeA], "a and b had a GPU each")
	var loads int64
	for _, m := range e.machines {
		loads += m.comfy.Counters().ModelLoads
	}
	assert.Equal(t, int64(2), loads, "each model loaded once")

	// The GPU with the model is busy: the prompt takes the other at once.
	long, _ := submitWith(t, gw, modelPrompt(longSteps, 9, "c", "a"), nil)
	assert.Equal(t, nodeA, waitRunningAt(t, e, gw, long).name)
	next, _ := submitWith(t, gw, modelPrompt(1, 10, "c", "a"), nil)
	st := waitState(t, gw, next, "done")
	assert.NotEqual(t, nodeA, st.Node)
	code, _, body := post(t, gw+"/interrupt", `{"prompt_id":"`+long+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	waitState(t, gw, long, "done")
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

func TestA1111OverrideCheckpointKeepsJobsOnTheGPUWithTheirModel(t *testing.T) {
	e := newCluster(t, 2, []string{"a1111"}, nil)
	gw := e.gateways["a1111"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "a1111") == 2 })
	where := map[string]map[string]bool{}
	for _, model := range []string{"sd_xl_base_1.0", "sd_xl_base_1.0", "sd_xl_base_1.0", "v1-5-pruned-emaonly", "v1-5-pruned-emaonly", "v1-5-pruned-emaonly"} {
		// Both free (the last job's GPU is offered again a moment after
		// its answer): a choice to make.
		waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "a1111") == 2 })
		code, gpu, body := post(t, gw+"/sdapi/v1/txt2img", `{"steps":1,"override_settings":{"sd_model_checkpoint":"`+model+`"}}`)
		require.Equal(t, http.StatusOK, code, body)
		if where[model] == nil {
			where[model] = map[string]bool{}
		}
		where[model][gpu] = true
	}
	require.Len(t, where["sd_xl_base_1.0"], 1, "%v", where)
	require.Len(t, where["v1-5-pruned-emaonly"], 1, "%v", where)
	var loads int64
	for _, m := range e.machines {
		loads += m.a1111.Counters().ModelLoads
	}
	assert.Equal(t, int64(1), loads, "sdxl loaded once (each fake starts with v1-5 loaded), not once per job")
}
