//go:build unix

package gpulock

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusShowsHolderAndWaitersInOrder(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	l := newTestLock(t, dir, 1)
	holder := startChild(t, "hold", childEnv(dir, 1, "comfyui", log)...)
	holder.expect("held")
	w1 := startChild(t, "once", childEnv(dir, 1, "a1111", log)...)
	w1.expect("waiting")
	waitFor(t, "first waiter", func() bool { return waitersOf(t, l) == 1 })
	w2 := startChild(t, "once", childEnv(dir, 1, "batch", log)...)
	w2.expect("waiting")
	waitFor(t, "second waiter", func() bool { return waitersOf(t, l) == 2 })

	all, err := ListStatus(dir)
	require.NoError(t, err)
	require.Len(t, all, 1)
	st := all[0]
	assert.Equal(t, "gpu1", st.Name)
	require.NotNil(t, st.GPU)
	assert.Equal(t, 1, *st.GPU)
	assert.True(t, st.Held)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "comfyui", st.Holder.Service)
	assert.Equal(t, holder.cmd.Process.Pid, st.Holder.PID)
	assert.NotEmpty(t, st.Holder.Host)
	assert.GreaterOrEqual(t, st.Holder.HeldSeconds, 0.0)
	require.Len(t, st.Waiters, 2)
	assert.Equal(t, "a1111", st.Waiters[0].Service)
	assert.Equal(t, w1.cmd.Process.Pid, st.Waiters[0].PID)
	assert.Equal(t, 1, st.Waiters[0].Position)
	assert.Equal(t, "batch", st.Waiters[1].Service)
	assert.Equal(t, 2, st.Waiters[1].Position)

	// The JSON schema that gpulock status --json and the shim serve.
	b, err := json.Marshal(st)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	for _, key := range []string{"name", "gpu", "path", "held", "holder", "waiters"} {
		assert.Contains(t, doc, key)
	}
	holderDoc := doc["holder"].(map[string]any)
	for _, key := range []string{"pid", "host", "service", "command", "since", "held_seconds"} {
		assert.Contains(t, holderDoc, key)
	}
	waiterDoc := doc["waiters"].([]any)[0].(map[string]any)
	for _, key := range []string{"pid", "host", "service", "since", "position", "waited_seconds"} {
		assert.Contains(t, waiterDoc, key)
	}

	// A waiter that dies leaves the line.
	w1.kill()
	waitFor(t, "the dead waiter to leave the status", func() bool { return waitersOf(t, l) == 1 })
	holder.finish()
	w2.wait()
	st, err = l.Status()
	require.NoError(t, err)
	assert.False(t, st.Held)
	assert.Nil(t, st.Holder)
	assert.Empty(t, st.Waiters)
}

func TestStatusOfHolderWithoutDescription(t *testing.T) {
	flockBin, err := exec.LookPath("flock")
	requireComponent(t, err == nil, "util-linux flock(1) is not installed")
	dir := t.TempDir()
	l := newTestLock(t, dir, 0)
	// A gpulock holder dies, leaving its description; then flock(1) takes
	// the lock: the lock is held, but not by the dead process.
	holder := startChild(t, "hold", childEnv(dir, 0, "dead", filepath.Join(dir, "log"))...)
	holder.expect("held")
	holder.kill()
	cmd := exec.Command(flockBin, l.Path(), "cat")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	waitFor(t, "flock(1) to hold", func() bool {
		st, err := l.Status()
		return err == nil && st.Held
	})
	st, err := l.Status()
	require.NoError(t, err)
	assert.Nil(t, st.Holder)
}

func TestListStatusSkipsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"gpu2.lock", "gpu10.lock", "gpu01.lock", "gpux.lock", "other.lock", "gpu3.lockx"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
	}
	all, err := ListStatus(dir)
	require.NoError(t, err)
	var names []string
	for _, st := range all {
		names = append(names, st.Name)
		assert.False(t, st.Held)
	}
	assert.Equal(t, []string{"gpu2", "gpu10"}, names)

	_, err = ListStatus(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
