package cluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A held offer starts the job it matches in the same script; the member's
// token lets that job start once more only until the mark goes (Unpre),
// and an unclaimed one goes back to assigned (Unstart).
func TestOfferHeldStartsTheJobItMatches(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const gpu = "n/0/a1111"
	register(t, s, gpu, "ta")
	for _, id := range []string{"j1", "j2"} {
		m, err := s.Enqueue(ctx, "a1111", id, Turn{Client: "c"}, 0, reserve)
		require.NoError(t, err)
		require.Equal(t, StateWaiting, m.State)
	}

	out, job, started, err := s.OfferHeld(ctx, gpu, "a1111", "ta", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferAssigned, out)
	require.Equal(t, "j1", job)
	assert.True(t, started)
	got, found, err := s.Job(ctx, "j1")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, StateRunning, got.State)
	assert.True(t, got.Pre, "started by the match, its dispatch awaited")
	assert.Equal(t, gpu, got.GPU)

	ok, err := s.Started(ctx, "j1", gpu)
	require.NoError(t, err)
	assert.False(t, ok, "not without the member's token")
	ok, err = s.StartedBy(ctx, "j1", gpu, "other", "")
	require.NoError(t, err)
	assert.False(t, ok, "not with another token")
	require.NoError(t, s.Unpre(ctx, "j1", "ta"))
	got, _, err = s.Job(ctx, "j1")
	require.NoError(t, err)
	assert.Equal(t, StateRunning, got.State)
	assert.False(t, got.Pre, "handed to the shim")
	ok, err = s.StartedBy(ctx, "j1", gpu, "ta", "")
	require.NoError(t, err)
	assert.False(t, ok, "a job handed to the shim never starts again")
	require.NoError(t, s.Done(ctx, "j1"))

	out, job, started, err = s.OfferHeld(ctx, gpu, "a1111", "ta", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferAssigned, out)
	require.Equal(t, "j2", job)
	require.True(t, started)
	require.NoError(t, s.Unstart(ctx, "j2", gpu, "ta", reserve))
	got, _, err = s.Job(ctx, "j2")
	require.NoError(t, err)
	assert.Equal(t, StateAssigned, got.State, "its lock went back unclaimed")
	assert.False(t, got.Pre)
	out, _, err = s.Offer(ctx, gpu, "a1111", "ta", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferReserved, out, "the GPU stays promised to the job")
	ok, err = s.Started(ctx, "j2", gpu)
	require.NoError(t, err)
	assert.True(t, ok, "its late dispatch starts it")
	ok, err = s.StartedBy(ctx, "j2", gpu, "ta", "")
	require.NoError(t, err)
	assert.False(t, ok, "once")
}
