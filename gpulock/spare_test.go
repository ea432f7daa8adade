//go:build unix

package gpulock

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spareOf reports whether l's queue holds a prepared ticket.
func spareOf(l *Lock) bool {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	return l.q.spare != nil
}

// waitersIn returns the number of Acquire calls of this process in l's line.
func waitersIn(l *Lock) int {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	return l.q.waiters.Len()
}

// queueEntries lists the queue directory, temporary tickets included.
func queueEntries(t *testing.T, l *Lock) []string {
	t.Helper()
	names, err := readDirNames(l.queueDir())
	require.NoError(t, err)
	return names
}

// A holder with more waiters has its next ticket made ahead; its release
// uses it, and nothing of it is left once nobody waits.
func TestSpareTicketPreparedUsedAndRemoved(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	first, err := l.Acquire(context.Background())
	require.NoError(t, err)

	got := make(chan *Handle, 2)
	for range 2 {
		go func() {
			h, err := l.Acquire(context.Background())
			assert.NoError(t, err)
			got <- h
		}()
	}
	waitFor(t, "two waiters", func() bool { return waitersIn(l) == 2 })
	assert.False(t, spareOf(l), "the first holder took the lock uncontended: nothing was made ahead")
	require.NoError(t, first.Release())

	second := <-got // handed over by the runner, with one more waiting
	waitFor(t, "the spare ticket", func() bool { return spareOf(l) })
	assert.Contains(t, queueEntries(t, l)[0], tempPrefix, "the spare is not in line yet")

	require.NoError(t, second.Release()) // takes its place with the spare
	third := <-got
	require.NoError(t, third.Release())
	waitFor(t, "the queue to empty", func() bool {
		return !spareOf(l) && len(queueEntries(t, l)) == 0
	})
}

// A spare whose waiters all give up goes with them. The waiter that gives
// up comes second, so that the first gets the lock.
func TestSpareTicketGoesWhenWaitersGiveUp(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	first, err := l.Acquire(context.Background())
	require.NoError(t, err)
	got := make(chan *Handle, 1)
	go func() {
		h, err := l.Acquire(context.Background())
		assert.NoError(t, err)
		got <- h
	}()
	waitFor(t, "the first waiter", func() bool { return waitersIn(l) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx)
		gaveUp <- err
	}()
	waitFor(t, "two waiters", func() bool { return waitersIn(l) == 2 })
	require.NoError(t, first.Release())
	second := <-got
	waitFor(t, "the spare ticket", func() bool { return spareOf(l) })

	cancel()
	require.ErrorIs(t, <-gaveUp, context.Canceled)
	waitFor(t, "the spare to go", func() bool { return !spareOf(l) })
	require.NoError(t, second.Release())
	entries, err := os.ReadDir(l.queueDir())
	require.NoError(t, err)
	assert.Empty(t, entries, "no ticket nor temporary file is left")
}
