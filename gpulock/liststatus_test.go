//go:build unix

package gpulock

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListStatusReportsBadFilesBesideGoodOnes(t *testing.T) {
	dir := t.TempDir()
	h, err := newTestLock(t, dir, 0).TryAcquire()
	require.NoError(t, err)
	defer h.Release()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "gpu1.lock"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gpu2.lock"), nil, 0o666))
	require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(dir, "gpu2.queue")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gpu3.lock"), nil, 0o666))

	list, err := ListStatus(dir)
	require.ErrorIs(t, err, ErrNotRegular)
	require.ErrorIs(t, err, ErrBadQueueDir)
	require.Len(t, list, 4, "every GPU is listed")
	assert.True(t, list[0].Held)
	assert.Empty(t, list[0].Error)
	assert.Contains(t, list[1].Error, "is a directory")
	assert.Contains(t, list[2].Error, "queue directory is a symlink")
	assert.Empty(t, list[3].Error)
	assert.False(t, list[3].Held)
}
