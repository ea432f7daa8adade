package nginxtest

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lineLen is the length of the cluster's line in Redis.
func (r *gwRig) lineLen() int64 {
	n, err := r.store.Client().ZCard(context.Background(), "gpulock:line").Result()
	if err != nil {
		return -1
	}
	return n
}

// journalLens returns how many jobs began on each machine's GPU so far.
func (r *gwRig) journalLens(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range r.machines {
		refs, err := m.gpu(t).Journal()
		require.NoError(t, err)
		out[m.name] = len(refs)
	}
	return out
}

// begunSince returns, per machine, the ids of the jobs that began after
// the journal lengths in since.
func (r *gwRig) begunSince(t *testing.T, since map[string]int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, m := range r.machines {
		refs, err := m.gpu(t).Journal()
		require.NoError(t, err)
		for _, ref := range refs[min(since[m.name], len(refs)):] {
			out[m.name] = append(out[m.name], ref.JobID)
		}
	}
	return out
}

func TestGatewaysBehindNginxRunBothProfiles(t *testing.T) {
	r := startGWRig(t, 2)
	c := newGWClient(r)
	jobs := newGWJobs(8, "smoke")
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	f := newFeed(t, ctx, c, 4, len(jobs))
	f.release(jobs)
	f.finish()
	perJob, _ := r.begun(t)
	for _, j := range jobs {
		require.NoError(t, j.sendErr, j.id)
		if j.profile == "comfyui" {
			assert.Equal(t, "success", j.status, "%s: %s", j.id, j.message)
		} else {
			assert.Equal(t, http.StatusOK, j.code, "%s: %s %s", j.id, j.errType, j.message)
		}
		assert.Len(t, perJob[j.id], 1, "%s began once", j.id)
	}
}

// TestGatewayKilledMidBurstLosesNothing SIGKILLs one gateway host (its
// ComfyUI and A1111 gateways) while a burst of jobs waits and runs: the
// other one goes on through nginx, the dead one's prompts run once and
// their history is served by the other, and its held A1111 requests end
// with nginx's 502 and leave the line.
func TestGatewayKilledMidBurstLosesNothing(t *testing.T) {
	r := startGWRig(t, 2)
	c := newGWClient(r)
	jobs := newGWJobs(40, "gwkill")
	ctx, cancel := context.WithTimeout(context.Background(), 2*eventTimeout)
	defer cancel()
	f := newFeed(t, ctx, c, 12, len(jobs))
	f.release(jobs)
	waitForCond(t, "prompts of both ComfyUI gateways and A1111 jobs waiting in line", func() bool {
		return r.promptOwners() >= 2 && r.lineLen() >= 4
	})
	r.gateways[0].kill()
	killedAt := r.journalLens(t)
	f.finish()

	waitForCond(t, "the line empty", func() bool { return r.lineLen() == 0 })
	r.waitNoJobLeft(t)
	r.checkComfySettled(t, c, jobs)
	perJob, overlaps := r.begun(t)
	after := r.begunSince(t, killedAt)
	counts := map[string]int{}
	for _, j := range jobs {
		counts[j.outcome()]++
		switch {
		case j.profile == "comfyui" && j.accepted():
			assert.Equal(t, "success", j.status, "accepted prompt %s: %s", j.id, j.message)
			assert.Len(t, perJob[j.id], 1, "accepted prompt %s began once", j.id)
		case j.accepted():
			assert.Equal(t, http.StatusOK, j.code, "A1111 job %s: %s %s", j.id, j.errType, j.message)
			assert.Len(t, perJob[j.id], 1, "A1111 job %s began once", j.id)
		default: // nginx's 502: the gateway died with the request
			require.NoError(t, j.sendErr, j.id)
			assert.LessOrEqual(t, len(perJob[j.id]), 1, "%s began at most once", j.id)
		}
	}
	// A held A1111 request of the dead gateway may begin after the kill
	// only if it was on its way to its GPU: one per machine at most. (A
	// prompt whose POST got nginx's 502 may have been stored already: it
	// then runs once, adopted, which the loop above allows.)
	deadAfter := map[string]int{}
	byID := map[string]*gwJob{}
	for _, j := range jobs {
		byID[j.id] = j
	}
	var lateOfDead []string // jobs the clients got 502 for that began after the kill
	for m, ids := range after {
		for _, id := range ids {
			if j := byID[id]; j != nil && !j.accepted() {
				lateOfDead = append(lateOfDead, m+":"+id)
			}
			if j := byID[id]; j != nil && j.profile == "a1111" && !j.accepted() {
				deadAfter[m]++
			}
		}
		assert.LessOrEqual(t, deadAfter[m], 1, "held requests of the dead gateway that began on %s after it died", m)
	}
	assert.Zero(t, overlaps)
	adopted := strings.Count(r.gateways[1].procs["comfyui"].logText(), "adopted a prompt of a gateway that is gone")
	assert.Positive(t, adopted, "the dead gateway's waiting prompts were adopted")
	t.Logf("gateway killed with %d jobs in flight: outcomes %v; %d prompts adopted by the other gateway; dead gateway's held A1111 requests begun after: %v; all its jobs begun after: %v",
		len(jobs), counts, adopted, deadAfter, lateOfDead)
}

// promptOwners counts the gateways whose prompts wait in line.
func (r *gwRig) promptOwners() int {
	ps, err := r.store.PendingPrompts(context.Background())
	if err != nil {
		return 0
	}
	owners := map[string]bool{}
	for _, p := range ps {
		owners[p.Owner] = true
	}
	return len(owners)
}

// TestMachineKilledMidJobEndsItWithAnErrorNamingIt SIGKILLs a machine (its
// shims and fakes) while it runs an A1111 job and the other machine runs
// another: the dead machine's job ends for its client with a 502 JSON
// error naming the machine and does not run again; the other job, and the
// jobs sent after, run on the live machine.
func TestMachineKilledMidJobEndsItWithAnErrorNamingIt(t *testing.T) {
	r := startGWRig(t, 2)
	c := newGWClient(r)
	ctx, cancel := context.WithTimeout(context.Background(), 2*eventTimeout)
	defer cancel()
	long := []*gwJob{{id: "long-a", profile: "a1111", steps: 100}, {id: "long-b", profile: "a1111", steps: 100}} // 0.5 s each
	f := newFeed(t, ctx, c, 2, len(long))
	f.release(long)
	dead := r.machines[1]
	waitForCond(t, "both machines running an A1111 job", func() bool {
		for _, m := range r.machines {
			st, err := m.gpu(t).Stats()
			if err != nil || len(st.Running) == 0 || st.Running[0].Service != "a1111" {
				return false
			}
		}
		return true
	})
	dead.kill()
	f.finish()
	waitForCond(t, dead.name+"'s lease ended in Redis", func() bool { return !r.live(dead) })
	after := newGWJobs(4, "after")
	f = newFeed(t, ctx, c, 2, len(after))
	f.release(after)
	f.finish()

	perJob, overlaps := r.begun(t)
	failed := 0
	for _, j := range long {
		require.NoError(t, j.sendErr, j.id)
		assert.Len(t, perJob[j.id], 1, "%s began once", j.id)
		if j.code == http.StatusOK {
			assert.Equal(t, []string{"m1"}, perJob[j.id], j.id)
			continue
		}
		failed++
		assert.Equal(t, http.StatusBadGateway, j.code, j.id)
		assert.Equal(t, "machine_failed", j.errType, j.id)
		assert.Contains(t, j.message, dead.name+"/0/a1111", j.id)
		assert.Equal(t, []string{dead.name}, perJob[j.id], j.id)
	}
	assert.Equal(t, 1, failed, "the dead machine's job failed, the other ran")
	for _, j := range after {
		assert.True(t, j.code == http.StatusOK && (j.profile == "a1111" || j.status == "success"), "%s: %s %s", j.id, j.outcome(), j.message)
		assert.Equal(t, []string{"m1"}, perJob[j.id], j.id)
	}
	assert.Zero(t, overlaps)
	r.waitNoJobLeft(t)
}
