package cluster

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startMember runs a member of gpu n/0/a1111 on lock, with local users
// waiting while waiting says so, until the test ends.
func startMember(t *testing.T, s *Store, lock *gpulock.Lock, waiting *atomic.Int32) *Member {
	t.Helper()
	m, err := NewMember(MemberConfig{Store: s, Node: "n", GPU: 0, Profile: "a1111", Advertise: "http://127.0.0.1:1", Lease: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, m.Register(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx, lock, func() int { return int(waiting.Load()) }) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return m
}

// While a local user holds the GPU and others wait, a job in the cluster's
// line gets the next turn: the member takes the lock in the local line and
// hands it to that job's dispatch; a lock taken for a match nobody claims
// goes back to the local users within grantTTL.
func TestMemberTakesTheClustersTurnInTheLocalLine(t *testing.T) {
	s := newTestStore(t)
	dir := t.TempDir()
	lock, err := gpulock.New(0, gpulock.WithDir(dir))
	require.NoError(t, err)
	users, err := gpulock.New(0, gpulock.WithDir(dir)) // the local users
	require.NoError(t, err)
	var waiting atomic.Int32
	m := startMember(t, s, lock, &waiting)
	ctx := context.Background()
	require.Eventually(t, func() bool { n, _ := s.FreeCount(ctx, "a1111"); return n == 1 }, 5*time.Second, 5*time.Millisecond, "offered free")

	for _, job := range []string{"claimed", "unclaimed"} {
		local, err := users.TryAcquire() // a local user's job
		require.NoError(t, err)
		waiting.Store(1) // and another local user waits
		require.Eventually(t, func() bool { n, _ := s.FreeCount(ctx, "a1111"); return n == 0 }, 5*time.Second, 5*time.Millisecond, "busy")
		match, err := s.Enqueue(ctx, "a1111", job, Turn{Client: "c"}, 0, reserve)
		require.NoError(t, err)
		require.Equal(t, StateWaiting, match.State, "the GPU is busy: the job waits")
		// The member joins the local line at its next poll; with the
		// shim's line not empty it offers nothing else, so whenever that
		// is, the freed lock can only go to the cluster's job.
		require.NoError(t, local.Release())
		require.Eventually(t, func() bool {
			got, found, err := s.Job(ctx, job)
			return err == nil && found && got.State == StateRunning && got.Pre
		}, 5*time.Second, 5*time.Millisecond, "the freed GPU goes to the cluster's job (started with its match), not to the local user")
		_, err = users.TryAcquire()
		require.ErrorIs(t, err, gpulock.ErrBusy, "the member holds the lock for the job")
		if job == "claimed" {
			h, started := m.Claim(job)
			require.NotNil(t, h, "the dispatch of the job gets the member's lock")
			assert.True(t, started, "the offer started the job")
			again, _ := m.Claim(job)
			assert.Nil(t, again, "once")
			ok, err := m.Started(ctx, job, "")
			require.NoError(t, err)
			assert.False(t, ok, "a job handed to the shim does not start again")
			ok, err = s.Started(ctx, job, m.ID())
			require.NoError(t, err)
			assert.False(t, ok, "nor through another member's Started")
			require.NoError(t, h.Release())
			require.NoError(t, s.Done(ctx, job))
			m.Released()
			continue
		}
		start := time.Now()
		var h *gpulock.Handle
		require.Eventually(t, func() bool {
			h, err = users.TryAcquire()
			return err == nil
		}, 5*time.Second, 5*time.Millisecond, "an unclaimed lock goes back")
		assert.Less(t, time.Since(start), grantTTL+time.Second)
		late, _ := m.Claim(job)
		assert.Nil(t, late, "too late")
		ok, err := m.Started(ctx, job, "")
		require.NoError(t, err)
		assert.True(t, ok, "a late dispatch of the job still runs it here, once")
		ok, err = m.Started(ctx, job, "")
		require.NoError(t, err)
		assert.False(t, ok, "once")
		require.NoError(t, h.Release())
		waiting.Store(0)
	}
}
