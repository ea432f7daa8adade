package cluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A shim's start that ran in Redis with its answer lost (Redis stopped as
// it answered, or was slow past the bound) costs no job: asked again, the
// same dispatch's start reports true; a shim that refused the job all the
// same (nothing ran) sees it put back in line by the requeue of that very
// dispatch, not by another's. Before, the job stayed "running" for ever
// and its prompt with it (seen in CI's chaos test).
func TestAStartWhoseAnswerWasLostIsTheDispatchsOwn(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const gpu = "n/0/a1111"
	register(t, s, gpu, "ta")
	out, _, err := s.Offer(ctx, gpu, "a1111", "ta", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferFree, out)
	m, err := s.Enqueue(ctx, "a1111", "j1", Turn{Client: "c"}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, StateAssigned, m.State)
	require.Equal(t, gpu, m.GPU)

	ok, err := s.StartedBy(ctx, "j1", gpu, "ta", "gw.1")
	require.NoError(t, err)
	require.True(t, ok, "the first start")
	ok, err = s.StartedBy(ctx, "j1", gpu, "ta", "gw.1")
	require.NoError(t, err)
	assert.True(t, ok, "the same dispatch, asking again after a lost answer")
	ok, err = s.StartedBy(ctx, "j1", gpu, "ta", "gw.2")
	require.NoError(t, err)
	assert.False(t, ok, "another dispatch of the job must not run it again")
	ok, err = s.StartedBy(ctx, "j1", gpu, "ta", "")
	require.NoError(t, err)
	assert.False(t, ok, "nor one without a token")

	_, found, err := s.Requeue(ctx, "j1", gpu, "gw.2", reserve, 0)
	require.NoError(t, err)
	assert.False(t, found, "another dispatch's requeue leaves the running job alone")
	_, found, err = s.Requeue(ctx, "j1", gpu, "", reserve, 0)
	require.NoError(t, err)
	assert.False(t, found, "as does one without a token")
	v, err := s.View(ctx)
	require.NoError(t, err)
	require.Len(t, v.GPUs, 1)
	assert.Equal(t, GPURunning, v.GPUs[0].State)

	// The shim refused the job (nothing ran): its dispatch's requeue puts
	// it back in its place in line, and the GPU's next offer (the shim
	// offers it as it lets the lock go) matches it again.
	back, found, err := s.Requeue(ctx, "j1", gpu, "gw.1", reserve, 0)
	require.NoError(t, err)
	require.True(t, found, "the refused dispatch's own start is undone")
	assert.Equal(t, StateWaiting, back.State)
	v, err = s.View(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, GPURunning, v.GPUs[0].State, "the GPU no longer shows the job running")
	out, job, err := s.Offer(ctx, gpu, "a1111", "ta", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferAssigned, out)
	assert.Equal(t, "j1", job)
	got, found, err := s.Job(ctx, "j1")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, StateAssigned, got.State)
	assert.Greater(t, got.N, m.N, "a new match")

	ok, err = s.StartedBy(ctx, "j1", gpu, "ta", "gw.3")
	require.NoError(t, err)
	assert.True(t, ok, "the next dispatch runs it")
}
