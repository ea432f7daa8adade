package gpulock

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
