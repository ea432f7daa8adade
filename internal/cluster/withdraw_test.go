package cluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A job whose gateway gave its client up while Redis was down is withdrawn
// once Redis is back. A held offer may have started it with its match
// meanwhile (Redis came back with the job still in line): Cancel leaves
// such a job (a live gateway still dispatches it), Withdraw takes it, and
// the member's Unstart, when its lock goes back unclaimed, then finds
// nothing to put back. Before, the job went back to assigned, reserved
// for nobody, and stayed so (seen in the chaos test).
func TestWithdrawTakesAJobAHeldOfferStartedThatNobodyClaimed(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const gpu = "n/0/a1111"
	register(t, s, gpu, "ta")
	for _, id := range []string{"j1", "j2"} {
		_, err := s.Enqueue(ctx, "a1111", id, Turn{Client: "c"}, 0, reserve)
		require.NoError(t, err)
	}
	out, job, started, err := s.OfferHeld(ctx, gpu, "a1111", "ta", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferAssigned, out)
	require.Equal(t, "j1", job)
	require.True(t, started)

	ok, err := s.Cancel(ctx, "j1")
	require.NoError(t, err)
	assert.False(t, ok, "Cancel leaves a started job")
	ok, err = s.Withdraw(ctx, "j1")
	require.NoError(t, err)
	assert.True(t, ok, "Withdraw takes a start nobody claimed")
	_, found, err := s.Job(ctx, "j1")
	require.NoError(t, err)
	assert.False(t, found)
	v, err := s.View(ctx)
	require.NoError(t, err)
	require.Len(t, v.GPUs, 1)
	assert.NotEqual(t, GPURunning, v.GPUs[0].State)

	require.NoError(t, s.Unstart(ctx, "j1", gpu, "ta", reserve), "the member's lock goes back unclaimed")
	_, found, err = s.Job(ctx, "j1")
	require.NoError(t, err)
	assert.False(t, found, "nothing put back to assigned")
	out, job, err = s.Offer(ctx, gpu, "a1111", "ta", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out, "the GPU is not reserved for the withdrawn job")
	assert.Equal(t, "j2", job)

	// A claimed start (its pre mark gone, the job running) is never taken.
	ok, err = s.Started(ctx, "j2", gpu)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.Withdraw(ctx, "j2")
	require.NoError(t, err)
	assert.False(t, ok, "a job that runs stays")
	got, found, err := s.Job(ctx, "j2")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, StateRunning, got.State)
}
