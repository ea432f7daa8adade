package fakea1111

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/simgpu"
)

func TestInterruptStillAnswersWithImage(t *testing.T) {
	f := newFixture(t, nil)
	ch := f.postAsync(t, t.Context(), "/sdapi/v1/txt2img", `{"steps": 5000}`)
	f.waitSampling(t, "scripts_txt2img")
	code, body := f.post(t, "/sdapi/v1/interrupt", ``)
	require.Equal(t, http.StatusOK, code, body)
	r := await(t, ch)
	require.Equal(t, http.StatusOK, r.code, r.body)
	var resp GenerateResponse
	require.NoError(t, json.Unmarshal([]byte(r.body), &resp))
	assert.Len(t, resp.Images, 1)
	assert.True(t, f.progress(t).State.Interrupted)
	assert.EqualValues(t, 1, f.srv.Counters().Interrupted)
}

func TestProgressJobCountTransitions(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ModelLoadDuration = 300 * time.Millisecond })
	assert.Zero(t, f.progress(t).State.JobCount, "idle")
	assert.Zero(t, f.progress(t).Progress)

	local := f.srv.StartLocalJob(longSteps)
	f.waitSampling(t, "agent_scheduler")
	p := f.progress(t)
	assert.Positive(t, p.Progress)
	assert.Equal(t, longSteps, p.State.SamplingSteps)

	// A model change queues behind the running job, then loads with -1.
	opts := f.postAsync(t, t.Context(), "/sdapi/v1/options", `{"sd_model_checkpoint": "sd_xl_base_1.0.safetensors [31e35c80fc]"}`)
	require.True(t, f.srv.Interrupt())
	require.NoError(t, await(t, local))
	require.Eventually(t, func() bool { return f.progress(t).State.JobCount == -1 }, waitTimeout, pollTick)
	r := await(t, opts)
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "null", strings.TrimSpace(r.body))
	assert.Zero(t, f.progress(t).State.JobCount, "idle again")

	var got map[string]any
	resp, err := http.Get(f.ts.URL + "/sdapi/v1/options")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	resp.Body.Close()
	assert.Equal(t, "sd_xl_base_1.0.safetensors [31e35c80fc]", got["sd_model_checkpoint"])
	assert.EqualValues(t, 1, f.srv.Counters().ModelLoads)
}

func TestClientDisconnectJobContinues(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	ch := f.postAsync(t, ctx, "/sdapi/v1/txt2img", `{"steps": 50}`)
	f.waitSampling(t, "scripts_txt2img")
	cancel()
	r := await(t, ch)
	assert.Zero(t, r.code, "the client gave up")

	require.Eventually(t, func() bool {
		c := f.srv.Counters()
		return c.Succeeded == 1 && c.Abandoned == 1
	}, waitTimeout, pollTick, "the job runs to the end")
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.Jobs)
	assert.Empty(t, st.Running)
	assert.Zero(t, f.progress(t).State.JobCount)
	assert.Equal(t, 50, f.progress(t).State.SamplingStep, "it sampled every step")
}

func TestUnloadBreaksRunningJobAndReloadsLater(t *testing.T) {
	f := newFixture(t, nil)
	ch := f.postAsync(t, t.Context(), "/sdapi/v1/txt2img", `{"steps": 5000}`)
	f.waitSampling(t, "scripts_txt2img")
	code, _ := f.post(t, "/sdapi/v1/unload-checkpoint", ``)
	require.Equal(t, http.StatusOK, code)
	r := await(t, ch)
	assert.Equal(t, http.StatusInternalServerError, r.code, r.body)

	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.Empty(t, st.Resident, "unload frees VRAM")

	code, body := f.post(t, "/sdapi/v1/txt2img", `{"steps": 1}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.EqualValues(t, 1, f.srv.Counters().ModelLoads, "the next job reloaded first")

	code, _ = f.post(t, "/sdapi/v1/unload-checkpoint", ``)
	require.Equal(t, http.StatusOK, code)
	code, _ = f.post(t, "/sdapi/v1/reload-checkpoint", ``)
	require.Equal(t, http.StatusOK, code)
	st, err = f.gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, DefaultModelBytes, st.Resident[DefaultService])
	assert.EqualValues(t, 2, f.srv.Counters().ModelLoads)
}

func TestOOMWhenComfyHoldsVRAM(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ModelBytes = 12 * simgpu.GiB })
	comfy, err := fakecomfy.New(fakecomfy.Config{GPU: f.gpu, ModelBytes: 12 * simgpu.GiB, StepDuration: testStep})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, comfy.Close()) })

	_, err = comfy.EnqueueLocal(fakecomfy.PromptRequest{Prompt: fakecomfy.TextToImagePrompt(2, 1), PromptID: "c1"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return comfy.Counters().Succeeded == 1 }, waitTimeout, pollTick)

	code, body := f.post(t, "/sdapi/v1/txt2img", `{"steps": 1}`)
	require.Equal(t, http.StatusInternalServerError, code, body)
	var aerr apiError
	require.NoError(t, json.Unmarshal([]byte(body), &aerr))
	assert.Equal(t, "OutOfMemoryError", aerr.Error)
	assert.Contains(t, aerr.Errors, "CUDA out of memory. Tried to allocate")

	ts := httptestServer(t, comfy.Handler())
	code, _ = postTo(t, ts+"/free", `{"unload_models": true}`)
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool {
		st, err := f.gpu.Stats()
		return err == nil && st.Resident[fakecomfy.DefaultService] == 0
	}, waitTimeout, pollTick)

	code, body = f.post(t, "/sdapi/v1/txt2img", `{"steps": 1}`)
	require.Equal(t, http.StatusOK, code, body)
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.OOMs)
	assert.Zero(t, st.Overlaps)
}
