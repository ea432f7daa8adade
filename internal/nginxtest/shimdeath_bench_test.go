package nginxtest

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/stretchr/testify/require"
)

// BenchmarkRandomShimKills is the bigger run of
// TestShimSIGKILLMidJobCausesNoOverlap: two clients per service keep one
// GPU busy through their shims, and an exec user runs jobs under `gpulock
// exec` (curl to a third fake backend of its own), while a random shim is
// SIGKILLed at a random moment, b.N times, and restarted at once (as
// systemd would). It reports the overlaps per kill, which must stay 0:
//
//	go test -run '^$' -bench RandomShimKills -benchtime 100x ./internal/nginxtest/
func BenchmarkRandomShimKills(b *testing.B) {
	r := newDeathRig(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, kind := range []string{"comfyui", "a1111", "comfyui", "a1111"} {
		wg.Go(func() { keepBusy(ctx, r, kind) })
	}
	batch := freePort(b) // the exec user's own backend, behind no shim
	fake := startProc(b, r.dir, "batch-backend", gpulockBin, "fake", "--listen", "127.0.0.1:"+strconv.Itoa(batch),
		"--sim-dir", r.sim, "--step", step.String(), "--default-steps", "4", "a1111")
	waitListening(b, batch, fake)
	execJobs := 0
	wg.Go(func() { execJobs = keepExecBusy(ctx, r, batch) })
	kinds := []string{"comfyui", "a1111"}
	b.ResetTimer()
	for range b.N {
		// A job of 4 steps takes 20 ms, the kills come every 20-300 ms: in
		// the middle of jobs, in hand-offs, while waiting.
		pause := time.NewTimer(time.Duration(20+rand.IntN(280)) * time.Millisecond)
		<-pause.C // the load's pace, not a synchronisation: any moment will do
		kind := kinds[rand.IntN(len(kinds))]
		r.shim[kind].kill()
		r.startShim(b, kind)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	waitForCond(b, "the last jobs to end", func() bool {
		st, err := r.gpu.Stats()
		return err == nil && len(st.Running) == 0
	})
	st, err := r.gpu.Stats()
	require.NoError(b, err)
	b.ReportMetric(float64(st.Overlaps)/float64(b.N), "overlaps/kill")
	b.ReportMetric(float64(st.Jobs)/float64(b.N), "jobs/kill")
	b.Logf("%d kills, %d jobs (%d by exec), %d overlaps, %d out-of-memory", b.N, st.Jobs, execJobs, st.Overlaps, st.OOMs)
	require.Zero(b, st.Overlaps, "jobs that overlapped: %+v", st.OverlapRecords)
}

// keepBusy sends kind's jobs to its shim, one after the other, until ctx
// ends; a job cut off by a shim's death is simply followed by the next.
func keepBusy(ctx context.Context, r *deathRig, kind string) {
	c := &loadgen.Client{Base: "http://127.0.0.1:" + strconv.Itoa(r.port[kind])}
	for ctx.Err() == nil {
		var err error
		if kind == "comfyui" {
			_, _, err = c.RunComfy(ctx, fakecomfy.TextToImagePrompt(4, rand.Int64()))
		} else {
			_, err = c.RunA1111(ctx, 4)
		}
		if err != nil {
			// The shim is down for a moment: try again soon.
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// keepExecBusy runs jobs under gpulock exec, one after the other, until ctx
// ends: each a txt2img of 4 steps sent by curl to the fake A1111 on port
// backend. It returns how many ran to the end.
func keepExecBusy(ctx context.Context, r *deathRig, backend int) int {
	done := 0
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, gpulockBin, "exec", "--lock-dir", r.locks, "--gpu", "0", "--name", "batch", "--quiet", "--",
			"curl", "-sf", "-o", "/dev/null", "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"steps": 4}`,
			"http://127.0.0.1:"+strconv.Itoa(backend)+"/sdapi/v1/txt2img")
		if cmd.Run() == nil {
			done++
		}
	}
	return done
}
