//go:build unix

package gpulock

import (
	"container/list"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// grantOrder queues one waiter per turn on l (in that order, each in line
// before the next comes) while the lock is held, releases it, and returns
// the order of the grants as indexes into turns.
func grantOrder(t *testing.T, l *Lock, turns []Turn) []int {
	t.Helper()
	h, err := l.Acquire(context.Background())
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i, turn := range turns {
		wg.Go(func() {
			h, err := l.AcquireTurn(context.Background(), turn)
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			assert.NoError(t, h.Release())
		})
		waitFor(t, "waiter to queue", func() bool { return queuedInProcess(l) == i+1 })
	}
	require.NoError(t, h.Release())
	wg.Wait()
	return order
}

func TestClientsTakeTurnsRoundRobin(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	var turns []Turn
	for range 6 {
		turns = append(turns, Turn{Client: "A"})
	}
	turns = append(turns, Turn{Client: "B"}, Turn{Client: "C"}, Turn{Client: "B"})
	// A's first came first; then B and C, who never had it; then A and B
	// alternate while both wait, A alone at the end.
	assert.Equal(t, []int{0, 6, 7, 1, 8, 2, 3, 4, 5}, grantOrder(t, l, turns))
}

func TestFairTurnsOffServesFirstComeFirstServed(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0, WithFairTurns(false))
	turns := []Turn{{Client: "A"}, {Client: "A"}, {Client: "A"}, {Client: "B"}}
	assert.Equal(t, []int{0, 1, 2, 3}, grantOrder(t, l, turns))
}

func TestHigherPriorityGoesFirst(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0, WithFairTurns(false))
	turns := []Turn{
		{Client: "A", Priority: PriorityLow},
		{Client: "A"},
		{Client: "B", Priority: PriorityHigh},
		{Client: "A"},
	}
	assert.Equal(t, []int{2, 1, 3, 0}, grantOrder(t, l, turns))
}

// TestAgingRule checks the picker at chosen instants: a wait rises one
// level per aging step, so a low wait goes ahead of fresh normal waits
// after one step, and of fresh high waits after two.
func TestAgingRule(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0, WithAging(10*time.Second), WithFairTurns(false))
	t0 := time.Unix(1_000_000, 0)
	q := &queue{}
	add := func(p Priority, since time.Time) *list.Element {
		return q.waiters.PushBack(&waiter{lock: l, turn: Turn{Client: "c", Priority: p}, since: since})
	}
	low := add(PriorityLow, t0)
	for _, at := range []time.Duration{time.Second, 9 * time.Second} {
		fresh := add(PriorityNormal, t0.Add(at))
		assert.Same(t, fresh, q.nextLocked(t0.Add(at)), "low still counts as low at %v", at)
		q.waiters.Remove(fresh)
	}
	fresh := add(PriorityNormal, t0.Add(10*time.Second))
	assert.Same(t, low, q.nextLocked(t0.Add(10*time.Second)), "after one step low counts as normal and came first")
	q.waiters.Remove(fresh)

	fresh = add(PriorityHigh, t0.Add(19*time.Second))
	assert.Same(t, fresh, q.nextLocked(t0.Add(19*time.Second)))
	q.waiters.Remove(fresh)
	add(PriorityHigh, t0.Add(20*time.Second))
	assert.Same(t, low, q.nextLocked(t0.Add(20*time.Second)), "after two steps low counts as high and came first")
}

func TestLevelNames(t *testing.T) {
	for in, want := range map[string]Priority{"low": PriorityLow, "Normal": PriorityNormal, "": PriorityNormal, "HIGH": PriorityHigh, "1": PriorityHigh} {
		got, err := ParsePriority(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParsePriority("urgent")
	require.ErrorContains(t, err, "use low, normal or high")
	assert.Equal(t, "low", Priority(-7).String())
}

// TestClientsTakeTurnsAcrossProcesses: a client with two processes in line
// gets one place per round, so a process of another client that comes
// after both goes between them; a high process goes ahead of all.
func TestClientsTakeTurnsAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	l := newTestLock(t, dir, 0)
	holder := startChild(t, "hold", childEnv(dir, 0, "holder", log)...)
	holder.expect("held")

	arrivals := []struct{ name, turn string }{
		{"a1", "A/normal"}, {"a2", "A/normal"}, {"b1", "B/normal"}, {"c1", "C/high"},
	}
	var waiters []*child
	for i, a := range arrivals {
		c := startChild(t, "once", append(childEnv(dir, 0, a.name, log), envTurn+"="+a.turn)...)
		c.expect("waiting")
		waitFor(t, a.name+" to take its place in line", func() bool { return waitersOf(t, l) == i+1 })
		waiters = append(waiters, c)
	}
	st, err := l.Status()
	require.NoError(t, err)
	var line []string
	for _, w := range st.Waiters {
		line = append(line, w.Service+"="+w.Client+"/"+w.Priority)
	}
	assert.Equal(t, []string{"c1=C/high", "a1=A/normal", "b1=B/normal", "a2=A/normal"}, line)

	holder.finish()
	for _, c := range waiters {
		c.wait()
	}
	assert.Equal(t, []string{"c1", "a1", "b1", "a2"}, turns(readLog(t, log)))
}
