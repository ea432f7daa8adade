package nginxtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deathRig is one GPU shared by a fake ComfyUI and a fake A1111, each
// started on its own (as a systemd unit would) behind a shim process that
// the test kills and restarts.
type deathRig struct {
	dir, locks, sim string
	gpu             *simgpu.GPU
	// per kind: the backend's port, the shim's port, the running shim
	backend, port map[string]int
	shim          map[string]*proc
	started       int
	// every shim started, in order, for the logs of a failed test
	all []*proc
}

func newDeathRig(t testing.TB) *deathRig {
	t.Helper()
	r := &deathRig{dir: t.TempDir(), backend: map[string]int{}, port: map[string]int{}, shim: map[string]*proc{}}
	sim := filepath.Join(r.dir, "sim")
	r.sim = sim
	r.locks = filepath.Join(r.dir, "locks")
	require.NoError(t, os.MkdirAll(r.locks, 0o755))
	for _, kind := range []string{"comfyui", "a1111"} {
		r.backend[kind] = freePort(t)
		fake := startProc(t, r.dir, kind+"-backend", gpulockBin, "fake", "--listen", "127.0.0.1:"+strconv.Itoa(r.backend[kind]),
			"--sim-dir", sim, "--step", step.String(), "--default-steps", "4", kind)
		waitListening(t, r.backend[kind], fake)
		r.port[kind] = freePort(t)
		r.startShim(t, kind)
	}
	var err error
	r.gpu, err = simgpu.Open(sim, 0, simgpu.Options{})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range r.all {
				t.Logf("%s logged:\n%s", filepath.Base(p.log), p.logText())
			}
		}
	})
	return r
}

// startShim starts (or restarts) the shim of kind on its port.
func (r *deathRig) startShim(t testing.TB, kind string) {
	t.Helper()
	r.started++
	p := startProc(t, r.dir, fmt.Sprintf("%s-shim-%d", kind, r.started), gpulockBin, "shim",
		"--listen", "127.0.0.1:"+strconv.Itoa(r.port[kind]), "--upstream", "http://127.0.0.1:"+strconv.Itoa(r.backend[kind]),
		"--profile", kind, "--lock-dir", r.locks)
	waitListening(t, r.port[kind], p)
	r.shim[kind] = p
	r.all = append(r.all, p)
}

// running reports whether a job of service runs on the GPU now.
func (r *deathRig) running(service string) bool {
	st, err := r.gpu.Stats()
	if err != nil {
		return false // the test fails on the next look at the stats
	}
	for _, j := range st.Running {
		if j.Service == service {
			return true
		}
	}
	return false
}

// submit sends one job of steps to kind's shim and returns at once; the
// client's answer (an error when its shim is killed) is not awaited.
func (r *deathRig) submit(ctx context.Context, wg *sync.WaitGroup, kind string, steps int) {
	c := &loadgen.Client{Base: "http://127.0.0.1:" + strconv.Itoa(r.port[kind])}
	wg.Go(func() {
		if kind == "comfyui" {
			_, _ = c.ComfyPrompt(ctx, fakecomfy.TextToImagePrompt(steps, int64(steps)))
			return
		}
		_ = c.A1111Txt2Img(ctx, steps)
	})
}

// TestShimSIGKILLMidJobCausesNoOverlap kills the shim of the service whose
// job runs, mid-job, with SIGKILL, then sends the other service's job at
// once, and restarts the dead shim (as systemd would): the other job waits
// for the dead shim's backend to finish, so the GPU's journal shows no
// overlap. Both services take turns being killed.
func TestShimSIGKILLMidJobCausesNoOverlap(t *testing.T) {
	const kills = 4
	r := newDeathRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*eventTimeout)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // ends the clients before waiting for them

	for i := range kills {
		victim, other := "comfyui", "a1111"
		if i%2 == 1 {
			victim, other = other, victim
		}
		before, err := r.gpu.Stats()
		require.NoError(t, err)
		// 80 steps of 5 ms: the job runs for 400 ms, long enough to be
		// killed in the middle of, short enough for the test.
		r.submit(ctx, &wg, victim, 80)
		waitForCond(t, victim+"'s job to run", func() bool { return r.running(victim) })
		r.shim[victim].kill()
		t.Logf("%s: killed the %s shim mid-job", time.Now().UTC().Format("15:04:05.000000"), victim)
		require.True(t, r.running(victim), "the dead shim's backend goes on with its job")

		r.submit(ctx, &wg, other, 4)
		r.startShim(t, victim)
		waitForCond(t, other+"'s job to run after the dead shim's", func() bool {
			st, err := r.gpu.Stats()
			return err == nil && st.Jobs >= before.Jobs+2 && len(st.Running) == 0
		})
	}
	st, err := r.gpu.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Overlaps, "jobs that overlapped: %+v", st.OverlapRecords)
	assert.Zero(t, st.OOMs)
	assert.GreaterOrEqual(t, st.Jobs, int64(2*kills))
	for kind, p := range r.shim {
		assert.NotContains(t, p.logText(), "panic", kind)
	}
	t.Logf("%d shim kills mid-job, %d jobs, %d overlaps", kills, st.Jobs, st.Overlaps)
}

// TestShimRestartedBeforeTheNextJobCausesNoOverlap forces the order that
// overlapped under load: the killed shim is restarted (its start-up check
// takes the lock and lets it go) before the other service's job comes. The
// dead shim's holder line survives the check, so the other job still waits
// for the dead shim's backend.
func TestShimRestartedBeforeTheNextJobCausesNoOverlap(t *testing.T) {
	r := newDeathRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*eventTimeout)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // ends the clients before waiting for them

	for i, victim := range []string{"comfyui", "a1111"} {
		other := map[string]string{"comfyui": "a1111", "a1111": "comfyui"}[victim]
		before, err := r.gpu.Stats()
		require.NoError(t, err)
		r.submit(ctx, &wg, victim, 80) // 400 ms
		waitForCond(t, victim+"'s job to run", func() bool { return r.running(victim) })
		r.shim[victim].kill()
		r.startShim(t, victim) // serving: its start-up check is done
		require.True(t, r.running(victim), "kill %d: the dead shim's job outlasts the restart", i)

		r.submit(ctx, &wg, other, 4)
		waitForCond(t, other+"'s job to run after the dead shim's", func() bool {
			st, err := r.gpu.Stats()
			return err == nil && st.Jobs >= before.Jobs+2 && len(st.Running) == 0
		})
	}
	st, err := r.gpu.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Overlaps, "jobs that overlapped: %+v", st.OverlapRecords)
	assert.GreaterOrEqual(t, st.Jobs, int64(4))
}
