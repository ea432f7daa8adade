package gpulock

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cpuOf sums the CPU time the processes' threads have run, from
// /proc/PID/task/*/schedstat (nanoseconds on the CPU is the first field).
func cpuOf(t testing.TB, pids []int) time.Duration {
	t.Helper()
	var total time.Duration
	for _, pid := range pids {
		tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "schedstat"))
		require.NoError(t, err)
		require.NotEmpty(t, tasks, "no threads for pid %d", pid)
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				continue // the thread ended
			}
			ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
			require.NoError(t, err)
			total += time.Duration(ns)
		}
	}
	return total
}

func TestWaitingCostsNoCPU(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	l := newTestLock(t, dir, 0)
	holder := startChild(t, "hold", childEnv(dir, 0, "holder", log)...)
	holder.expect("held")
	const n = 5
	var pids []int
	for i := range n {
		c := startChild(t, "once", childEnv(dir, 0, "w", log)...)
		c.expect("waiting")
		pids = append(pids, c.cmd.Process.Pid)
		waitFor(t, "waiter to queue", func() bool { return waitersOf(t, l) == i+1 })
	}
	before := cpuOf(t, pids)
	time.Sleep(time.Second) // the interval measured, not a synchronisation
	used := cpuOf(t, pids) - before
	t.Logf("%d waiters used %v of CPU in 1s", n, used)
	assert.Less(t, used, 50*time.Millisecond, "waiters sleep in the kernel")
	holder.finish()
}
