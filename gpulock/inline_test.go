//go:build unix

package gpulock

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A wait that cannot be given up runs the queue in its own goroutine; when
// a higher waiter's turn comes first, it hands the lock over and still gets
// its own turn after.
func TestUncancellableWaitRunsTheLineAndYieldsToHigher(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	// Held by plain flock, as by another process: this one is then idle,
	// and its first waiter becomes the runner.
	other, err := os.OpenFile(l.Path(), os.O_RDWR|os.O_CREATE, 0o666)
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, unix.Flock(int(other.Fd()), unix.LOCK_EX))

	order := make(chan string, 2)
	handles := make(chan *Handle, 2)
	go func() {
		h, err := l.Acquire(context.Background()) // the runner, in this goroutine
		assert.NoError(t, err)
		order <- "normal"
		handles <- h
	}()
	waitFor(t, "the runner", func() bool {
		l.q.mu.Lock()
		defer l.q.mu.Unlock()
		return l.q.running && l.q.waiters.Len() == 1
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		h, err := l.AcquireTurn(ctx, Turn{Priority: PriorityHigh})
		assert.NoError(t, err)
		order <- "high"
		handles <- h
	}()
	waitFor(t, "two waiters", func() bool { return waitersIn(l) == 2 })

	require.NoError(t, unix.Flock(int(other.Fd()), unix.LOCK_UN))
	assert.Equal(t, "high", <-order, "the higher waiter goes first")
	require.NoError(t, (<-handles).Release())
	assert.Equal(t, "normal", <-order)
	require.NoError(t, (<-handles).Release())
}
