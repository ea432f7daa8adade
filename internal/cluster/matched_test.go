package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each match publishes the match itself, numbered, so that a gateway can
// dispatch without reading the job back and tell a stale hint from the
// current one.
func TestMatchedHintCarriesTheNumberedMatch(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	register(t, s, "n/0/a1111", "t")
	ps := s.SubscribeMatched(ctx)
	defer ps.Close()
	_, err := ps.Receive(ctx) // the subscription's confirmation
	require.NoError(t, err)

	m, err := s.Enqueue(ctx, "a1111", "j1", Turn{}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, StateWaiting, m.State)
	want := Match{State: StateAssigned, GPU: "n/0/a1111", URL: "http://127.0.0.1:1/n/0/a1111"}
	for n := int64(1); n <= 2; n++ {
		out, job, err := s.Offer(ctx, "n/0/a1111", "a1111", "t", reserve)
		require.NoError(t, err)
		require.Equal(t, OfferAssigned, out)
		require.Equal(t, "j1", job)
		msg, err := ps.ReceiveMessage(ctx)
		require.NoError(t, err)
		id, hint, ok := ParseMatched(msg.Payload)
		require.True(t, ok, msg.Payload)
		assert.Equal(t, "j1", id)
		want.N = n
		assert.Equal(t, want, hint, "match %d", n)
		read, found, err := s.Job(ctx, "j1")
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, want, read, "the job's hash says the same")
		// The GPU turned out busy: back in line, then offered again.
		back, found, err := s.Requeue(ctx, "j1", "n/0/a1111", "", reserve, 0)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, StateWaiting, back.State)
	}
	_, _, ok := ParseMatched("j1")
	assert.False(t, ok, "a bare id is not a match")
}
