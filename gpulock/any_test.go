//go:build unix

package gpulock

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAcquireAnyTakesAFreeOneAtOnce(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	startChild(t, "hold", childEnv(dir, 0, "h0", log)...).expect("held")
	startChild(t, "hold", childEnv(dir, 1, "h1", log)...).expect("held")
	locks := []*Lock{newTestLock(t, dir, 0), newTestLock(t, dir, 1), newTestLock(t, dir, 2)}
	h, err := AcquireAny(context.Background(), locks)
	require.NoError(t, err)
	assert.Equal(t, 2, h.GPU())
	require.NoError(t, h.Release())
}

func TestAcquireAnyWaitsForTheFirstReleased(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	var holders []*child
	var locks []*Lock
	for gpu := range 3 {
		c := startChild(t, "hold", childEnv(dir, gpu, "holder", log)...)
		c.expect("held")
		holders = append(holders, c)
		locks = append(locks, newTestLock(t, dir, gpu))
	}
	got := make(chan *Handle, 1)
	go func() {
		h, err := AcquireAny(context.Background(), locks)
		assert.NoError(t, err)
		got <- h
	}()
	for _, l := range locks {
		waitFor(t, "a place in line on "+l.Name(), func() bool { return waitersOf(t, l) == 1 })
	}
	holders[1].finish()
	var h *Handle
	select {
	case h = <-got:
	case <-time.After(eventTimeout):
		t.Fatal("AcquireAny did not take the released GPU")
	}
	require.NotNil(t, h)
	assert.Equal(t, 1, h.GPU())
	for _, gpu := range []int{0, 2} {
		waitFor(t, "the other places in line to be withdrawn", func() bool { return waitersOf(t, locks[gpu]) == 0 })
	}
	require.NoError(t, h.Release())
}

func TestAcquireAnyGivesUpWithTheContext(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	locks := []*Lock{newTestLock(t, dir, 0), newTestLock(t, dir, 1)}
	for gpu := range locks {
		startChild(t, "hold", childEnv(dir, gpu, "holder", log)...).expect("held")
	}
	ctx, cancel := context.WithTimeout(context.Background(), shortWait)
	defer cancel()
	_, err := AcquireAny(ctx, locks)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, l := range locks {
		waitFor(t, "places in line to be withdrawn", func() bool { return waitersOf(t, l) == 0 })
	}
	_, err = AcquireAny(context.Background(), nil)
	require.Error(t, err)
}
