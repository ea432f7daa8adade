package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A freed GPU of one profile takes the first job of its profile at once,
// however many jobs of the other profile wait before it, and the entries
// of jobs gone from Redis are dropped on the way.
func TestOfferFindsItsProfilesJobBehindTheOthers(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "busy/0/comfyui", "tc")
	register(t, s, "n/0/a1111", "ta")
	for k := range 200 {
		m, err := s.Enqueue(ctx, "comfyui", fmt.Sprint("c", k), Turn{Client: fmt.Sprint(k)}, 0, reserve)
		require.NoError(t, err)
		require.Equal(t, StateWaiting, m.State)
	}
	for _, id := range []string{"a0", "a1", "a2"} {
		m, err := s.Enqueue(ctx, "a1111", id, Turn{Client: id}, 0, reserve)
		require.NoError(t, err)
		require.Equal(t, StateWaiting, m.State)
	}
	require.NoError(t, s.Done(ctx, "a0")) // its gateway forgot it without a cancel
	out, job, err := s.Offer(ctx, "n/0/a1111", "a1111", "ta", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out)
	assert.Equal(t, "a1", job, "the first a1111 job still waiting")
	line, err := s.Client().ZRange(ctx, prefix+"line", 0, -1).Result()
	require.NoError(t, err)
	assert.Len(t, line, 201, "the 200 ComfyUI jobs and a2; a0's entry dropped, a1 matched")
	assert.NotContains(t, line, "a0")
	assert.Contains(t, line, "a2")
	ok, err := s.Cancel(ctx, "a2")
	require.NoError(t, err)
	require.True(t, ok)
	n, err := s.Client().ZCard(ctx, prefix+"pline:a1111").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left in a1111's line")
}

// A member that holds the GPU lock matches only jobs for itself: the
// sibling's job (the GPU's shim of the other profile, which would find the
// lock held) is left to an offer without the lock, and keeps its place.
func TestOfferHeldLeavesTheSiblingsJob(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/a1111", "ta")
	register(t, s, "n/0/comfyui", "tc")
	m, err := s.Enqueue(ctx, "comfyui", "c1", Turn{Client: "c"}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, StateWaiting, m.State)
	out, _, _, err := s.OfferHeld(ctx, "n/0/a1111", "a1111", "ta", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferSibling, out)
	got, _, err := s.Job(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, StateWaiting, got.State, "still in line")
	n, err := s.FreeCount(ctx, "a1111")
	require.NoError(t, err)
	assert.Zero(t, n, "not in the free set either")

	out, job, err := s.Offer(ctx, "n/0/a1111", "a1111", "ta", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out, "an offer without the lock gives the GPU to the sibling's job")
	assert.Equal(t, "c1", job)
	got, _, err = s.Job(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "n/0/comfyui", got.GPU)
}

// A member already in its free set still matches its sibling's job on a
// re-offer: the sibling (registered, not yet offered) was not free when
// the job came, so the job waits although this member is free.
func TestReofferOfAFreeMemberTakesItsSiblingsJob(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/comfyui", "tc")
	out, _, err := s.Offer(ctx, "n/0/comfyui", "comfyui", "tc", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferFree, out)
	register(t, s, "n/0/a1111", "ta")
	m, err := s.Enqueue(ctx, "a1111", "a1", Turn{}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, StateWaiting, m.State, "the a1111 member has not offered yet")
	out, job, err := s.Offer(ctx, "n/0/comfyui", "comfyui", "tc", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out)
	assert.Equal(t, "a1", job)
}
