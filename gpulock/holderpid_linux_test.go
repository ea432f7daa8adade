package gpulock

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHolderPIDs(t *testing.T) {
	l, err := New(0, WithDir(t.TempDir()), WithService("test"))
	require.NoError(t, err)
	h, err := l.TryAcquire()
	require.NoError(t, err)
	pids, err := HolderPIDs(l.Path())
	require.NoError(t, err)
	assert.Equal(t, []int{os.Getpid()}, pids, "the kernel names this process as the holder")
	require.NoError(t, h.Release())

	pids, err = HolderPIDs(l.Path())
	require.NoError(t, err)
	assert.Empty(t, pids, "a free lock has no holder")

	_, err = HolderPIDs(filepath.Join(t.TempDir(), "missing.lock"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestAncestorOf(t *testing.T) {
	assert.True(t, AncestorOf(os.Getpid()), "this process")
	assert.True(t, AncestorOf(os.Getppid()), "the parent")
	assert.True(t, AncestorOf(1), "init is everyone's ancestor")
	assert.False(t, AncestorOf(1<<30), "no such process")
}
