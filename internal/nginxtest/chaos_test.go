package nginxtest

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChaosMachineGatewayAndRedisKilledMidBurst sends a burst of ComfyUI
// prompts and A1111 jobs through nginx and, while they wait and run,
// SIGKILLs a machine (its shims and fakes), a gateway host and Redis
// (restarted on the same port, from its append-only file). Every job the
// clients sent is counted and checked against the GPUs' journals: no GPU
// ran two jobs at once, no job began twice, every accepted job ended with a
// result or a clear error naming the machine or Redis, none was lost, and
// the cluster serves the last batch as if nothing had happened.
func TestChaosMachineGatewayAndRedisKilledMidBurst(t *testing.T) {
	r := startGWRig(t, 3)
	c := newGWClient(r)
	ctx, cancel := context.WithTimeout(context.Background(), 3*eventTimeout)
	defer cancel()
	all := newGWJobs(60, "chaos")
	batches := [][]*gwJob{all[:20], all[20:35], all[35:50], all[50:]}
	f := newFeed(t, ctx, c, 12, len(all))
	dead := r.machines[2]

	// 1. A machine dies while it runs a prompt and jobs wait in line.
	f.release(batches[0])
	waitForCond(t, dead.name+" running a prompt with jobs in line", func() bool {
		st, err := dead.gpu(t).Stats()
		return err == nil && len(st.Running) > 0 && st.Running[0].Service == "comfyui" && r.lineLen() >= 2
	})
	dead.kill()
	waitForCond(t, dead.name+"'s lease ended in Redis", func() bool { return !r.live(dead) })

	// 2. A gateway host dies with jobs in line.
	f.release(batches[1])
	waitForCond(t, "jobs in line before the gateway dies", func() bool { return r.lineLen() >= 3 })
	r.gateways[0].kill()
	gatewayKilledAt := r.journalLens(t)

	// 3. Redis dies with jobs in line and a prompt running; a job sent
	// meanwhile is refused at once naming Redis; it comes back from its
	// append-only file once a held request gave up and the prompt ended.
	f.release(batches[2])
	var runs *gwMachine
	var prompt string
	waitForCond(t, "a prompt running with jobs in line before Redis dies", func() bool {
		runs, prompt = r.runningPrompt(t, r.machines[:2])
		return runs != nil && r.lineLen() >= 2
	})
	r.redis.Stop()
	probe := &gwJob{id: "chaos-probe-redis-down", profile: "a1111", steps: 4}
	sent := time.Now()
	c.run(ctx, probe)
	refusedIn := time.Since(sent)
	require.Equal(t, http.StatusServiceUnavailable, probe.code, "a job sent while Redis is down: %s %s", probe.errType, probe.message)
	assert.Contains(t, probe.message, "Redis")
	assert.Less(t, refusedIn, 2*time.Second, "a job sent while Redis is down is refused at once")
	// A held A1111 request gets a clear error rather than hanging.
	f.waitEnded(t, "with a 503 naming Redis", func(j *gwJob) bool {
		return j.profile == "a1111" && j.code == http.StatusServiceUnavailable && strings.Contains(j.message, "Redis")
	})
	waitForCond(t, "prompt "+prompt+" ended while Redis is down", func() bool {
		st, err := runs.gpu(t).Stats()
		return err == nil && !slices.ContainsFunc(st.Running, func(j simgpu.RunningJob) bool { return j.JobID == prompt })
	})
	r.redis.Restart()
	for _, m := range r.machines[:2] {
		waitForCond(t, m.name+" registered again after Redis came back", func() bool { return r.live(m) })
	}
	r.waitGatewaysRead(t, r.gateways[1:])

	// 4. The cluster goes on as if nothing had happened.
	f.release(batches[3])
	f.finish()
	waitForCond(t, "the line empty", func() bool { return r.lineLen() == 0 })
	if !assert.Eventually(t, func() bool { return r.jobsLeft() == 0 }, eventTimeout, pollEvery, "no job left in Redis") {
		t.Logf("left in Redis: %s", r.jobsReport())
	}
	// Redis keeps every job in its append-only file, and no held request
	// of a live gateway is taken for a dead one's when Redis comes back
	// without any lease: none is put in line again. (A prompt is, when its
	// gateway died between recording it and putting its job in line.)
	assert.NotContains(t, r.gateways[1].procs["a1111"].logText(), "job lost from Redis")

	r.checkComfySettled(t, c, all)

	jobs := append(slices.Clone(all), probe)
	perJob, overlaps := r.begun(t)
	counts := map[string]int{}
	begunTotal := 0
	for _, j := range jobs {
		counts[j.outcome()]++
		begunTotal += len(perJob[j.id])
		checkChaosJob(t, j, perJob[j.id], dead.name)
	}
	for _, j := range batches[3] {
		assert.True(t, j.code == http.StatusOK && (j.profile == "a1111" || j.status == "success"),
			"a job sent after every fault ended: %s %s: %s", j.id, j.outcome(), j.message)
	}
	// A held request of the dead gateway may begin after it died only if
	// it was on its way to its GPU then: one per machine at most.
	gwFailed := map[string]bool{}
	for _, j := range jobs {
		// (a prompt whose POST got nginx's 502 may have been accepted:
		// then it is adopted and runs, as it should)
		if j.profile == "a1111" && j.errType == "gateway_failed" {
			gwFailed[j.id] = true
		}
	}
	for m, ids := range r.begunSince(t, gatewayKilledAt) {
		n := 0
		for _, id := range ids {
			if gwFailed[id] {
				n++
			}
		}
		assert.LessOrEqual(t, n, 1, "held requests of the dead gateway that began on %s after it died", m)
	}
	assert.Zero(t, overlaps, "GPUs that ran two jobs at once")
	t.Logf("chaos: %d jobs sent, %d began on a GPU, %d overlaps; outcomes: %v; a job sent while Redis was down refused in %v",
		len(jobs), begunTotal, overlaps, counts, refusedIn.Round(time.Millisecond))
}

// checkChaosJob checks one job's end against where it began (began: the
// machines whose journal has it).
func checkChaosJob(t *testing.T, j *gwJob, began []string, deadMachine string) {
	t.Helper()
	require.NoError(t, j.sendErr, "%s got an answer", j.id)
	assert.LessOrEqual(t, len(began), 1, "%s began once at most: %v", j.id, began)
	deadGPU := deadMachine + "/0/" + j.profile
	switch {
	case j.code == http.StatusOK && j.profile == "a1111":
		assert.Len(t, began, 1, "A1111 job %s answered 200 began once", j.id)
	case j.code == http.StatusOK && j.status == "success":
		assert.Len(t, began, 1, "prompt %s in history as a success began once", j.id)
	case j.code == http.StatusOK && j.status == "error":
		assert.Contains(t, j.message, deadGPU, "prompt %s failed naming the machine that died", j.id)
		assert.NotContains(t, began, "m1", j.id)
		assert.NotContains(t, began, "m2", j.id)
	case j.code == http.StatusOK:
		t.Errorf("prompt %s was accepted but never reached /history (status %q): lost", j.id, j.status)
	case j.errType == "gateway_failed":
		// nginx's 502: the gateway died with the request; it ran once at most
	case j.code == http.StatusBadGateway && j.errType == "machine_failed":
		assert.Contains(t, j.message, deadGPU, "A1111 job %s failed naming the machine that died", j.id)
		assert.NotContains(t, began, "m1", j.id)
		assert.NotContains(t, began, "m2", j.id)
	case j.code == http.StatusServiceUnavailable && (strings.Contains(j.message, "Redis") || j.errType == "no_machine"):
		assert.Empty(t, began, "%s was refused (%s: %s) and must not run", j.id, j.errType, j.message)
	default:
		t.Errorf("%s ended without a clear error: %d %s: %s", j.id, j.code, j.errType, j.message)
	}
}

// runningPrompt returns one of machines running a prompt now, and the
// prompt's id; nil when none does.
func (r *gwRig) runningPrompt(t *testing.T, machines []*gwMachine) (*gwMachine, string) {
	t.Helper()
	for _, m := range machines {
		st, err := m.gpu(t).Stats()
		if err != nil {
			continue
		}
		for _, j := range st.Running {
			if j.Service == "comfyui" {
				return m, j.JobID
			}
		}
	}
	return nil, ""
}

// checkComfySettled checks, through nginx, that Redis keeps the history of
// every accepted prompt (GET /history lists it) and that the cluster's
// /queue shows none of them still pending or running.
func (r *gwRig) checkComfySettled(t *testing.T, c *gwClient, jobs []*gwJob) {
	t.Helper()
	var hist map[string]json.RawMessage
	c.getJSON(t, "comfyui", "/history", &hist)
	var q struct {
		Running [][]json.RawMessage `json:"queue_running"`
		Pending [][]json.RawMessage `json:"queue_pending"`
	}
	// A prompt's history is written before its gateway takes it off the
	// running list: /queue empties just after the last entry appears.
	assert.Eventually(t, func() bool {
		q.Running, q.Pending = nil, nil
		c.getJSON(t, "comfyui", "/queue", &q)
		return len(q.Running) == 0 && len(q.Pending) == 0
	}, eventTimeout, pollEvery)
	for _, j := range jobs {
		if j.profile == "comfyui" && j.code == http.StatusOK {
			assert.Contains(t, hist, j.id, "GET /history lists accepted prompt %s", j.id)
		}
	}
	assert.Empty(t, q.Running, "prompts still running in /queue after the burst")
	assert.Empty(t, q.Pending, "prompts still pending in /queue after the burst")
}
