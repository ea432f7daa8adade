package fakecomfy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// resident returns the bytes the fake's model holds on the GPU.
func (f *fixture) resident(t *testing.T) int64 {
	t.Helper()
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	return st.Resident[DefaultService]
}

func TestFree(t *testing.T) {
	f := newFixture(t, nil)
	f.submit(t, "", "warm", 1)
	f.waitHistory(t, "warm")
	require.Equal(t, 6*simgpu.GiB, f.resident(t), "models stay resident after a prompt")

	var stats struct {
		Devices []struct {
			VRAMTotal int64 `json:"vram_total"`
			VRAMFree  int64 `json:"vram_free"`
		} `json:"devices"`
	}
	require.Equal(t, http.StatusOK, f.getJSON(t, "/system_stats", &stats))
	assert.Equal(t, 24*simgpu.GiB, stats.Devices[0].VRAMTotal)
	assert.Equal(t, 18*simgpu.GiB, stats.Devices[0].VRAMFree)

	code, _ := f.post(t, "/free", `{}`)
	require.Equal(t, http.StatusOK, code, "no flags: nothing to do")
	code, _ = f.post(t, "/free", ``)
	require.Equal(t, http.StatusInternalServerError, code, "an empty body is malformed JSON")

	// While a prompt runs, the unload waits for it.
	long := f.submit(t, "", "long", longSteps)
	f.waitRunning(t, long)
	code, _ = f.post(t, "/api/free", `{"unload_models": true, "free_memory": true}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, 6*simgpu.GiB, f.resident(t))
	assert.Zero(t, f.srv.Counters().Frees)
	require.True(t, f.srv.Interrupt(long))
	require.Eventually(t, func() bool { return f.resident(t) == 0 }, waitTimeout, pollTick)

	// While idle, at once (no event says when).
	f.submit(t, "", "again", 1)
	f.waitHistory(t, "again")
	require.Equal(t, 6*simgpu.GiB, f.resident(t))
	code, _ = f.post(t, "/free", `{"free_memory": true}`)
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { return f.resident(t) == 0 }, waitTimeout, pollTick)
	assert.EqualValues(t, 2, f.srv.Counters().Frees)
}

func TestOOMWhenAnotherServiceHoldsVRAM(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ModelBytes = 12 * simgpu.GiB })
	other, err := f.gpu.Begin("a1111", "x", 12*simgpu.GiB)
	require.NoError(t, err)
	require.NoError(t, other.End())

	c := f.dial(t, "cl")
	id := f.submit(t, "cl", "", 2)
	frames := c.until(promptDone(id))
	fail := frames[len(frames)-3]
	require.Equal(t, "execution_error", fail.Type)
	assert.Equal(t, "3", fail.Data["node_id"])
	assert.Equal(t, "KSampler", fail.Data["node_type"])
	assert.Contains(t, fail.Data["exception_message"], "CUDA out of memory")

	e := f.history(t, id)[id]
	assert.Equal(t, "error", e.Status.StatusStr)
	assert.Equal(t, "execution_error", lastMessage(e))
	assert.EqualValues(t, 1, f.srv.Counters().Failed)

	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.OOMs)
	assert.Empty(t, st.Running)

	// After the other service frees its model, the prompt fits.
	require.NoError(t, f.gpu.Free("a1111"))
	id = f.submit(t, "cl", "", 1)
	frames = c.until(promptDone(id))
	assert.Equal(t, "execution_success", frames[len(frames)-3].Type)
}

func TestPromptsDoNotOverlapThemselves(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "cl")
	var last string
	for range 3 {
		last = f.submit(t, "cl", "", 2)
	}
	c.until(promptDone(last))
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 3, st.Jobs)
	assert.Zero(t, st.Overlaps)
}
