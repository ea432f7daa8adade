//go:build unix

package gpulock

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKilledHoldersAndWaitersBlockNobody kills holders and waiters with
// SIGKILL at random moments, many times, while the others keep taking
// turns, and checks that two processes never hold the lock at once and
// that the lock stays usable.
func TestKilledHoldersAndWaitersBlockNobody(t *testing.T) {
	const (
		procs = 4
		kills = 200
	)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	occ := filepath.Join(dir, "occupancy")
	require.NoError(t, os.WriteFile(occ, nil, 0o644))
	env := append(childEnv(dir, 0, "k", log), envOcc+"="+occ)

	kids := make([]*child, procs)
	for i := range kids {
		kids[i] = startChild(t, "killable", env...)
	}
	killed := map[string]bool{}
	turnsSoFar := func() int {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), " turn\n")
	}
	for range kills {
		before := turnsSoFar()
		// Let the survivors take a turn or two, then kill one at a random moment.
		want := before + 1 + rand.IntN(2)
		waitFor(t, "the others to take turns", func() bool { return turnsSoFar() >= want })
		i := rand.IntN(procs)
		killed[strconv.Itoa(kids[i].cmd.Process.Pid)] = true
		kids[i].kill()
		kids[i] = startChild(t, "killable", env...)
	}
	for _, k := range kids {
		killed[strconv.Itoa(k.cmd.Process.Pid)] = true // the others may see it die too
		k.kill()
	}

	suspects, gone := 0, 0
	for _, e := range readLog(t, log) {
		if prev, ok := strings.CutPrefix(e.text, "suspect "); ok {
			suspects++
			if prev == "gone" {
				gone++ // let go before it could be named: a dying holder, almost surely
				continue
			}
			assert.True(t, killed[prev], "two holders at once: %s was still inside and was not killed", prev)
		}
	}
	t.Logf("%d kills, %d turns, %d turns that began while a killed holder's descriptors were closing (%d gone before named)",
		kills, turnsSoFar(), suspects, gone)

	l := newTestLock(t, dir, 0)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	h, err := l.Acquire(ctx)
	require.NoError(t, err, "nothing left behind blocks a newcomer")
	require.NoError(t, h.Release())
	waitFor(t, "dead tickets to be gone from the status", func() bool { return waitersOf(t, l) == 0 })
}

func TestDeadHolderIsNotReported(t *testing.T) {
	dir := t.TempDir()
	l := newTestLock(t, dir, 0)
	holder := startChild(t, "hold", childEnv(dir, 0, "doomed", filepath.Join(dir, "log"))...)
	holder.expect("held")
	st, err := l.Status()
	require.NoError(t, err)
	require.True(t, st.Held)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "doomed", st.Holder.Service)
	assert.Equal(t, holder.cmd.Process.Pid, st.Holder.PID)

	holder.kill()
	st, err = l.Status()
	require.NoError(t, err)
	assert.False(t, st.Held)
	assert.Nil(t, st.Holder, "a dead holder's description is not shown")

	h, err := l.AcquireTimeout(eventTimeout)
	require.NoError(t, err)
	st, err = l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, os.Getpid(), st.Holder.PID, "the new holder's description replaces the dead one's")
	require.NoError(t, h.Release())
}
