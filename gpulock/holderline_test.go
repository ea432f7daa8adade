//go:build unix

package gpulock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReleaseClearsTheHolderLine(t *testing.T) {
	dir := t.TempDir()
	l, err := New(0, WithDir(dir), WithService("svc-name"), WithCommand("tool --token=SECRET"))
	require.NoError(t, err)
	// A holder that crashed left a longer line than ours behind.
	left := `{"pid":1,"service":"old","command":"` + strings.Repeat("x", 300) + ` --password=LEFTOVER"}` + "\n"
	require.NoError(t, os.WriteFile(l.Path(), []byte(left), 0o666))

	h, err := l.TryAcquire()
	require.NoError(t, err)
	b, err := os.ReadFile(l.Path())
	require.NoError(t, err)
	require.Contains(t, string(b), "SECRET", "the holder says what it was told to while it holds")
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "svc-name", st.Holder.Service)
	require.NoError(t, h.Release())

	b, err = os.ReadFile(l.Path())
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(string(b)), "nothing of any holder is left after release: %q", b)
	st, err = l.Status()
	require.NoError(t, err)
	assert.False(t, st.Held)
	assert.Nil(t, st.Holder)
}

func TestDefaultCommandIsTheProgramsBaseName(t *testing.T) {
	l, err := New(0, WithDir(t.TempDir()))
	require.NoError(t, err)
	h, err := l.TryAcquire()
	require.NoError(t, err)
	defer h.Release()
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, filepath.Base(os.Args[0]), st.Holder.Command, "argv[0]'s base name only, no arguments")
	assert.NotContains(t, st.Holder.Command, "-test.")
}
