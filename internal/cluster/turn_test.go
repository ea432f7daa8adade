package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/require"
)

type queued struct {
	id   string
	turn Turn
}

// order enqueues jobs on one waiting GPU, then offers it again and again
// (each match started and done) and returns the ids in the order served.
func order(t *testing.T, jobs []queued) []string {
	t.Helper()
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/a1111", "t")
	for _, j := range jobs {
		m, err := s.Enqueue(ctx, "a1111", j.id, j.turn, 0, reserve)
		require.NoError(t, err)
		require.Equal(t, StateWaiting, m.State, "no GPU offered yet")
	}
	var got []string
	for range jobs {
		out, id, err := s.Offer(ctx, "n/0/a1111", "a1111", "t", reserve)
		require.NoError(t, err)
		require.Equal(t, OfferAssigned, out)
		ok, err := s.Started(ctx, id, "n/0/a1111")
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.Done(ctx, id))
		got = append(got, id)
	}
	out, _, err := s.Offer(ctx, "n/0/a1111", "a1111", "t", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferFree, out, "nothing left in line")
	return got
}

func TestLineTakesTurnsBetweenClients(t *testing.T) {
	var jobs []queued
	for k := range 4 {
		jobs = append(jobs, queued{fmt.Sprint("a", k), Turn{Client: "A"}})
	}
	jobs = append(jobs, queued{"b0", Turn{Client: "B"}}, queued{"b1", Turn{Client: "B"}}, queued{"c0", Turn{Client: "C"}})
	require.Equal(t, []string{"a0", "b0", "c0", "a1", "b1", "a2", "a3"}, order(t, jobs),
		"round-robin between clients, arrival within a client")
}

func TestLineInArrivalOrderWithoutFairTurns(t *testing.T) {
	var jobs []queued
	for k := range 4 {
		jobs = append(jobs, queued{fmt.Sprint("a", k), Turn{Client: "A", ArrivalOrder: true}})
	}
	jobs = append(jobs, queued{"b0", Turn{Client: "B", ArrivalOrder: true}})
	require.Equal(t, []string{"a0", "a1", "a2", "a3", "b0"}, order(t, jobs))
}

func TestLinePutsHigherLevelsFirst(t *testing.T) {
	jobs := []queued{
		{"low", Turn{Client: "L", Priority: gpulock.PriorityLow}},
		{"n0", Turn{Client: "N"}},
		{"n1", Turn{Client: "N"}},
		{"high", Turn{Client: "H", Priority: gpulock.PriorityHigh}},
	}
	// high: one step early; n0: at arrival; low and n1: one step late, low
	// arrived first.
	require.Equal(t, []string{"high", "n0", "low", "n1"}, order(t, jobs))
}

func TestAClientsNextJobIsNotPushedBackOnceItsLastLeft(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/a1111", "t")
	// A's first job is served and done; its next one comes in line at its
	// arrival, before B's job that came after it.
	_, err := s.Enqueue(ctx, "a1111", "a0", Turn{Client: "A"}, 0, reserve)
	require.NoError(t, err)
	_, id, err := s.Offer(ctx, "n/0/a1111", "a1111", "t", reserve)
	require.NoError(t, err)
	require.Equal(t, "a0", id)
	ok, err := s.Started(ctx, "a0", "n/0/a1111")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.Done(ctx, "a0"))
	for _, j := range []queued{{"a1", Turn{Client: "A"}}, {"b0", Turn{Client: "B"}}} {
		_, err := s.Enqueue(ctx, "a1111", j.id, j.turn, 0, reserve)
		require.NoError(t, err)
	}
	_, id, err = s.Offer(ctx, "n/0/a1111", "a1111", "t", reserve)
	require.NoError(t, err)
	require.Equal(t, "a1", id)
}
