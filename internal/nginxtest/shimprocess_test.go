package nginxtest

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shimQueue returns how many requests wait in a shim's line, from its status.
func shimQueue(t *testing.T, port int) int {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/gpulock/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct {
		Shim struct {
			Queue []json.RawMessage `json:"queue"`
		} `json:"shim"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return len(st.Shim.Queue)
}

// TestBusyShimDoesNotStarveTheOther queues 20 A1111 jobs in one shim
// process, then one ComfyUI prompt in the other shim process of the same
// GPU: the prompt runs within two of the A1111 jobs after it arrived.
func TestBusyShimDoesNotStarveTheOther(t *testing.T) {
	m := startMachine(t, 1, 1)
	a1111 := &loadgen.Client{Base: "http://127.0.0.1:" + strconv.Itoa(m.a1111Shim[0])}
	comfy := &loadgen.Client{Base: "http://127.0.0.1:" + strconv.Itoa(m.comfyShim[0])}
	ctx, cancel := context.WithTimeout(context.Background(), 2*eventTimeout)
	defer cancel()

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { assert.NoError(t, a1111.A1111Txt2Img(ctx, 4)) })
	}
	waitForCond(t, "A1111 jobs to queue in their shim", func() bool { return shimQueue(t, m.a1111Shim[0]) >= 15 })

	// The jobs that began before the prompt is sent cannot count against
	// it; the one running then, and one that begins while the prompt is on
	// its way, may.
	gpu := m.gpu(t, 0)
	before, err := gpu.Journal()
	require.NoError(t, err)
	_, err = comfy.ComfyPrompt(ctx, fakecomfy.TextToImagePrompt(4, 1))
	require.NoError(t, err)
	wg.Wait()

	refs, err := gpu.Journal()
	require.NoError(t, err)
	a1111After := 0
	for _, r := range refs[len(before):] {
		if r.Service == "comfyui" {
			break
		}
		a1111After++
	}
	t.Logf("%d A1111 jobs began between the prompt's sending (when %d had begun) and its start", a1111After, len(before))
	assert.LessOrEqual(t, a1111After, 2, "the other service's job runs within two of the busy shim's jobs")
}

// TestShimStopsGracefullyOnSIGTERM sends SIGTERM to a shim process while
// one A1111 job runs and another waits: the waiting one gets 503, the
// running one finishes and is answered, and the shim exits 0.
func TestShimStopsGracefullyOnSIGTERM(t *testing.T) {
	m := startMachine(t, 1, 1)
	base := "http://127.0.0.1:" + strconv.Itoa(m.a1111Shim[0])
	client := &loadgen.Client{Base: base}
	ctx, cancel := context.WithTimeout(context.Background(), 2*eventTimeout)
	defer cancel()
	running := make(chan error, 1)
	go func() { running <- client.A1111Txt2Img(ctx, 200) }() // 1 s of work
	waitForCond(t, "the job to run", func() bool {
		st, err := m.gpu(t, 0).Stats()
		return err == nil && len(st.Running) == 1
	})
	queued := make(chan error, 1)
	go func() { queued <- client.A1111Txt2Img(ctx, 4) }()
	waitForCond(t, "a second job in line", func() bool { return shimQueue(t, m.a1111Shim[0]) == 1 })

	shim := m.shims[1] // the a1111 shim of GPU 0
	require.NoError(t, shim.cmd.Process.Signal(syscall.SIGTERM))
	err := <-queued
	require.Error(t, err)
	assert.True(t, loadgen.Unavailable(err), "the job in line gets 503: %v", err)
	require.NoError(t, <-running, "the running job finishes and is answered")
	select {
	case <-shim.done:
	case <-time.After(eventTimeout):
		t.Fatal("the shim did not exit after SIGTERM")
	}
	assert.Equal(t, 0, shim.cmd.ProcessState.ExitCode(), shim.logText())
}

// waitForCond polls cond until it holds or eventTimeout passes.
func waitForCond(t testing.TB, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, eventTimeout, pollEvery, "waiting for %s", what)
}
