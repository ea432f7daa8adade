package gateway

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/redistest"
)

// TestRequeueAfterALostAnswerTakesTheNewMatch: a requeue of a prompt is
// tried until Redis answers, and a try can run in Redis with its answer
// lost (Redis slow past the bound, or stopped as it answered). That try
// put the job back and matched it with another GPU; the next try finds it
// no longer assigned to the GPU it names. The job is still this gateway's:
// requeue takes the new match (the caller dispatches it), rather than
// leaving it matched with nobody to send it (seen in the chaos test: a
// prompt pending for ever, its job assigned in Redis).
func TestRequeueAfterALostAnswerTakesTheNewMatch(t *testing.T) {
	for name, prompt := range map[string]string{"held request": "", "prompt": "a-prompt-of-this-gateway"} {
		t.Run(name, func(t *testing.T) {
			e := newCluster(t, 2, []string{"a1111"}, nil)
			waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "a1111") == 2 })
			g, err := New(Config{Profile: "a1111", Store: e.store, Lease: testLease, Logger: quietLogger()})
			require.NoError(t, err)
			ctx := context.Background()
			const job = "job-lost-answer"
			m, err := e.store.Enqueue(ctx, "a1111", job, cluster.Turn{}, 0, cluster.DefaultReserve)
			require.NoError(t, err)
			require.Equal(t, cluster.StateAssigned, m.State, "matched at once: both GPUs are free")

			// The try whose answer was lost: it held the first GPU out and
			// matched the job with the other.
			again, found, err := e.store.Requeue(ctx, job, m.GPU, "", cluster.DefaultReserve, testLease)
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, cluster.StateAssigned, again.State)
			require.NotEqual(t, m.GPU, again.GPU)

			got, err := g.requeue(ctx, job, prompt, cluster.Turn{}, m.GPU, "", testLease)
			require.NoError(t, err)
			assert.Equal(t, cluster.StateAssigned, got.State)
			assert.Equal(t, again.GPU, got.GPU, "the new match")
		})
	}
}

// TestARefusedDispatchWhoseStartRanInRedisRunsLater: a shim's start ran in
// Redis but its answer was lost (Redis stopped as it answered), so the
// shim refused the job with a 409 and ran nothing. The job is "running"
// in Redis, started by that very dispatch (its token): the requeue puts
// it back in line and it runs, once. Before, the gateway took it for a
// job another dispatch ran and gave up on it: the client got no answer
// and the job stayed "running" for ever (a prompt: pending for ever,
// seen in CI's chaos test).
func TestARefusedDispatchWhoseStartRanInRedisRunsLater(t *testing.T) {
	r := redistest.Start(t)
	st := newStore(t, r)
	fleet := newFakeFleet(t, st, []string{cluster.GPUID("m1", 0, "a1111")}, testLease)
	fleet.shims[0].mu.Lock()
	fleet.shims[0].loseStarts = 2
	fleet.shims[0].mu.Unlock()
	_, gw := startGateway(t, r, "a1111")

	postSteps(t, gw, "alice", 2)
	runs := fleet.allRuns()
	assert.Len(t, runs[0], 1, "the job ran once, after two refused dispatches")
	fleet.shims[0].mu.Lock()
	assert.Zero(t, fleet.shims[0].loseStarts, "both lost starts were met")
	fleet.shims[0].mu.Unlock()
	v, err := st.View(context.Background())
	require.NoError(t, err)
	assert.Zero(t, v.LineLength, "nothing left in line")
	require.Len(t, v.GPUs, 1)
	assert.NotEqual(t, cluster.GPURunning, v.GPUs[0].State, "no job left running in Redis")
}
