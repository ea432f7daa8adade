package gpulock

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A queue directory that is a symlink (planted by another user in a shared
// lock dir) is refused, and nothing in its target is touched.
func TestSymlinkedQueueDirIsRefusedAndUntouched(t *testing.T) {
	lockDir, target := t.TempDir(), t.TempDir()
	victims := []string{"00000000000000000001-1-deadbeef", ".tmp-1-deadbeef"}
	old := time.Now().Add(-time.Hour)
	for _, n := range victims {
		p := filepath.Join(target, n)
		require.NoError(t, os.WriteFile(p, []byte("precious\n"), 0o600))
		require.NoError(t, os.Chtimes(p, old, old))
	}
	require.NoError(t, os.Symlink(target, filepath.Join(lockDir, "gpu0.queue")))
	l, err := New(0, WithDir(lockDir))
	require.NoError(t, err)

	_, err = l.TryAcquire()
	require.ErrorIs(t, err, ErrBadQueueDir)
	_, err = l.AcquireTimeout(time.Second)
	require.ErrorIs(t, err, ErrBadQueueDir)
	_, err = l.Status()
	require.ErrorIs(t, err, ErrBadQueueDir)

	for _, n := range victims {
		b, err := os.ReadFile(filepath.Join(target, n))
		require.NoError(t, err, "%s was deleted through the symlink", n)
		assert.Equal(t, "precious\n", string(b))
	}
}

// Only names exactly of createTicket's temporary pattern are temporaries.
func TestIsTempName(t *testing.T) {
	assert.True(t, isTempName(".tmp-123-0badf00d"))
	for _, n := range []string{".tmp-", ".tmp-x-0badf00d", ".tmp-1-0BADF00D", ".tmp-1-abc", ".tmp-important"} {
		assert.False(t, isTempName(n), n)
	}
}
