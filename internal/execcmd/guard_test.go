package execcmd

import (
	"os/exec"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGroupMembers: /proc tells the guard who is left in a group.
func TestGroupMembers(t *testing.T) {
	c := exec.Command("sleep", "1000")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, c.Start())
	pid := c.Process.Pid
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })

	members, err := groupMembers(pid)
	require.NoError(t, err)
	assert.Equal(t, []int{pid}, members)
	assert.True(t, groupHasOthers(pid))

	require.NoError(t, c.Process.Kill())
	_ = c.Wait()
	members, err = groupMembers(pid)
	require.NoError(t, err)
	assert.Empty(t, members)
	assert.False(t, groupHasOthers(pid))

	// This process is no "other" member of its own group.
	members, err = groupMembers(syscall.Getpgrp())
	require.NoError(t, err)
	assert.NotEmpty(t, members)
}
