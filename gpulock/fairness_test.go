//go:build unix

package gpulock

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProcessesAreServedInArrivalOrder(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	l := newTestLock(t, dir, 0)
	holder := startChild(t, "hold", childEnv(dir, 0, "holder", log)...)
	holder.expect("held")

	names := []string{"first", "second", "third", "fourth"}
	var waiters []*child
	for i, name := range names {
		c := startChild(t, "once", childEnv(dir, 0, name, log)...)
		c.expect("waiting")
		waitFor(t, name+" to take its place in line", func() bool { return waitersOf(t, l) == i+1 })
		waiters = append(waiters, c)
	}
	st, err := l.Status()
	require.NoError(t, err)
	for i, w := range st.Waiters {
		assert.Equal(t, names[i], w.Service)
		assert.Equal(t, i+1, w.Position)
	}

	holder.finish()
	for _, c := range waiters {
		c.wait()
	}
	assert.Equal(t, names, turns(readLog(t, log)))
}

// turns returns the names of the log's turn entries, without "start" lines.
func turns(entries []logEntry) []string {
	var out []string
	for _, e := range entries {
		if !strings.HasSuffix(e.text, " start") {
			out = append(out, e.text)
		}
	}
	return out
}

// turnsWhileWaiting counts the turns of who between the start of waiter's
// wait and its turn.
func turnsWhileWaiting(t *testing.T, entries []logEntry, who, waiter string) int {
	t.Helper()
	var start, got int64
	for _, e := range entries {
		switch e.text {
		case waiter + " start":
			start = e.at
		case waiter:
			got = e.at
		}
	}
	require.NotZero(t, start)
	require.NotZero(t, got)
	n := 0
	for _, e := range entries {
		if e.text == who && e.at > start && e.at < got {
			n++
		}
	}
	return n
}

func TestNoBargingByALoopingHolder(t *testing.T) {
	// Plain flock lets a process that releases and asks again at once win
	// over a blocked waiter, several times in a row.
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	looper := startChild(t, "loop", append(childEnv(dir, 0, "looper", log), envHold+"=20ms")...)
	waitFor(t, "the looper to take turns", func() bool { return len(readLog(t, log)) >= 3 })

	c := startChild(t, "once", childEnv(dir, 0, "newcomer", log)...)
	c.expect("waiting")
	c.wait()
	looper.kill()
	n := turnsWhileWaiting(t, readLog(t, log), "looper", "newcomer")
	assert.LessOrEqual(t, n, 1, "the newcomer waits at most for the turn in progress")
}

func TestBusyProcessCannotStarveAnother(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	// Two clients: processes of one client share its turns (see
	// TestClientsTakeTurnsAcrossProcesses).
	busy := startChild(t, "busy", append(childEnv(dir, 0, "busy", log), envHold+"=2ms", envTurn+"=busy/normal")...)
	waitFor(t, "the busy process to take turns", func() bool { return len(readLog(t, log)) >= 40 })

	c := startChild(t, "once", append(childEnv(dir, 0, "single", log), envTurn+"=single/normal")...)
	c.expect("waiting")
	c.wait()
	busy.kill()
	n := turnsWhileWaiting(t, readLog(t, log), "busy", "single")
	assert.LessOrEqual(t, n, 2, "a process with 20 waiters gets one turn, then goes to the back of the line")
}

func TestTwoBusyProcessesAlternate(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	startChild(t, "busy", append(childEnv(dir, 0, "a", log), envHold+"=1ms", envCount+"=5")...)
	startChild(t, "busy", append(childEnv(dir, 0, "b", log), envHold+"=1ms", envCount+"=5")...)
	waitFor(t, "both to finish", func() bool { return len(readLog(t, log)) == 200 })

	// Once both are in line they alternate: no run of one process's turns
	// longer than two (the first turns happen before the other arrives).
	entries := turns(readLog(t, log))
	first := 0
	for first < len(entries) && entries[first] == entries[0] {
		first++
	}
	last := len(entries) - 1
	for last > 0 && entries[last] == entries[len(entries)-1] {
		last--
	}
	run, longest := 1, 1
	for i := first + 1; i <= last; i++ {
		if entries[i] == entries[i-1] {
			run++
		} else {
			run = 1
		}
		longest = max(longest, run)
	}
	assert.LessOrEqual(t, longest, 2, "turns: %v", entries)
}
