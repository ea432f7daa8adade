package gateway

import (
	"context"
	"net/http"
	"testing"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
