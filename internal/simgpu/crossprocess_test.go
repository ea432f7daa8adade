package simgpu

import (
	"bufio"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// childCmd returns the test binary re-executed in role against dir.
func childCmd(t *testing.T, role, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: a race-enabled binary otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), childRoleEnv+"="+role, childDirEnv+"="+dir, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	return cmd
}

func TestCrossProcessOverlapIsRecorded(t *testing.T) {
	dir := t.TempDir()
	cmd := childCmd(t, roleHold, dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "begun\n", line)

	g, err := Open(dir, 0, Options{})
	require.NoError(t, err)
	job, err := g.Begin("parent", "p1", GiB)
	require.NoError(t, err)
	require.NoError(t, job.End())

	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())

	st, err := g.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 2, st.Jobs)
	assert.EqualValues(t, 1, st.Overlaps)
	require.Len(t, st.OverlapRecords, 1)
	rec := st.OverlapRecords[0]
	assert.Equal(t, JobRef{Service: "child", JobID: roleHold, PID: cmd.Process.Pid}, rec.First)
	assert.Equal(t, JobRef{Service: "parent", JobID: "p1", PID: os.Getpid()}, rec.Second)
	assert.Empty(t, st.Running)
}

func TestCrossProcessSequentialJobsDoNotOverlap(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, childCmd(t, roleOnce, dir).Run())
	g, err := Open(dir, 0, Options{})
	require.NoError(t, err)
	job, err := g.Begin("parent", "p1", GiB)
	require.NoError(t, err)
	require.NoError(t, job.End())
	require.NoError(t, childCmd(t, roleOnce, dir).Run())

	st, err := g.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 3, st.Jobs)
	assert.Zero(t, st.Overlaps)
	assert.Empty(t, st.OverlapRecords)
}

func TestDeadProcessJobDoesNotCountAsRunning(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, childCmd(t, roleDie, dir).Run())
	g, err := Open(dir, 0, Options{})
	require.NoError(t, err)

	st, err := g.Stats()
	require.NoError(t, err)
	assert.Empty(t, st.Running)
	assert.EqualValues(t, GiB, st.Resident["child"], "the dead process's model stays resident")

	job, err := g.Begin("parent", "p1", 0)
	require.NoError(t, err)
	require.NoError(t, job.End())
	st, err = g.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Overlaps)
}
