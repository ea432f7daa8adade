package simgpu

import (
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openTest opens GPU 0 in a fresh directory with 24 GiB and 4 GiB working memory.
func openTest(t *testing.T) *GPU {
	t.Helper()
	g, err := Open(t.TempDir(), 0, Options{TotalVRAM: 24 * GiB, WorkingVRAM: 4 * GiB})
	require.NoError(t, err)
	return g
}

func TestBeginMemory(t *testing.T) {
	type begin struct {
		service string
		model   int64
		keep    bool // leave running
		oom     bool
	}
	tests := []struct {
		name  string
		steps []begin
	}{
		{"one model fits", []begin{{service: "a", model: 12 * GiB}}},
		{"model plus working exactly fits", []begin{{service: "a", model: 20 * GiB}}},
		{"model too big", []begin{{service: "a", model: 21 * GiB, oom: true}}},
		{"two services resident exceed", []begin{
			{service: "a", model: 12 * GiB},
			{service: "b", model: 12 * GiB, oom: true},
		}},
		{"same service reuses its model", []begin{
			{service: "a", model: 12 * GiB},
			{service: "a", model: 12 * GiB},
		}},
		{"two running jobs need two working sets", []begin{
			{service: "a", model: 9 * GiB, keep: true},
			{service: "b", model: 9 * GiB, oom: true},
		}},
		{"two small services fit", []begin{
			{service: "a", model: 8 * GiB},
			{service: "b", model: 8 * GiB},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := openTest(t)
			var wantOOM int64
			for i, b := range tt.steps {
				job, err := g.Begin(b.service, "j", b.model)
				if b.oom {
					wantOOM++
					require.Error(t, err, "step %d", i)
					assert.True(t, errors.Is(err, ErrOutOfMemory))
					assert.Contains(t, err.Error(), "CUDA out of memory. Tried to allocate")
					assert.Nil(t, job)
					continue
				}
				require.NoError(t, err, "step %d", i)
				if !b.keep {
					require.NoError(t, job.End())
				}
			}
			st, err := g.Stats()
			require.NoError(t, err)
			assert.Equal(t, wantOOM, st.OOMs)
			assert.Equal(t, st.VRAMTotal-st.VRAMUsed, st.VRAMFree)
		})
	}
}

func TestOOMLeavesNoRunningJob(t *testing.T) {
	g := openTest(t)
	_, err := g.Begin("a", "big", 30*GiB)
	require.ErrorIs(t, err, ErrOutOfMemory)
	st, err := g.Stats()
	require.NoError(t, err)
	assert.Empty(t, st.Running)
	assert.Empty(t, st.Resident)
	assert.Zero(t, st.Jobs)
	assert.Zero(t, st.BusyNanos)
}

func TestFreeUnloadsModel(t *testing.T) {
	g := openTest(t)
	job, err := g.Begin("a", "1", 12*GiB)
	require.NoError(t, err)
	require.NoError(t, job.End())
	_, err = g.Begin("b", "2", 12*GiB)
	require.ErrorIs(t, err, ErrOutOfMemory)

	require.NoError(t, g.Free("a"))
	require.NoError(t, g.Free("absent"))
	job, err = g.Begin("b", "3", 12*GiB)
	require.NoError(t, err)
	require.NoError(t, job.End())

	st, err := g.Stats()
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"b": 12 * GiB}, st.Resident)
	assert.Equal(t, 12*GiB, st.VRAMUsed)
}

func TestOverlapInProcess(t *testing.T) {
	g := openTest(t)
	first, err := g.Begin("comfyui", "c1", GiB)
	require.NoError(t, err)
	second, err := g.Begin("a1111", "a1", GiB)
	require.NoError(t, err)

	st, err := g.Stats()
	require.NoError(t, err)
	assert.Len(t, st.Running, 2)
	assert.EqualValues(t, 2*GiB+8*GiB, st.VRAMUsed)

	require.NoError(t, first.End())
	require.NoError(t, first.End(), "End is idempotent")
	require.NoError(t, second.End())

	st, err = g.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 2, st.Jobs)
	assert.EqualValues(t, 1, st.Overlaps)
	require.Len(t, st.OverlapRecords, 1)
	assert.Equal(t, "c1", st.OverlapRecords[0].First.JobID)
	assert.Equal(t, "a1", st.OverlapRecords[0].Second.JobID)
	assert.Empty(t, st.Running)
	assert.Positive(t, st.BusyNanos)
}

func TestConcurrentHandlesKeepCounts(t *testing.T) {
	dir := t.TempDir()
	const workers, perWorker = 4, 10
	var wg sync.WaitGroup
	for w := range workers {
		g, err := Open(dir, 0, Options{TotalVRAM: 1000 * GiB})
		require.NoError(t, err)
		wg.Go(func() {
			for range perWorker {
				job, err := g.Begin("svc", "j", GiB)
				if !assert.NoError(t, err, "worker %d", w) {
					return
				}
				assert.NoError(t, job.End())
			}
		})
	}
	wg.Wait()
	g, err := Open(dir, 0, Options{})
	require.NoError(t, err)
	st, err := g.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, workers*perWorker, st.Jobs)
	assert.Empty(t, st.Running)
}

func TestResetClearsEverything(t *testing.T) {
	g := openTest(t)
	job, err := g.Begin("a", "1", GiB)
	require.NoError(t, err)
	_, err = g.Begin("b", "2", 100*GiB)
	require.Error(t, err)
	require.NoError(t, g.Reset())
	require.NoError(t, job.End(), "ending a job after Reset has no effect")

	st, err := g.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Jobs)
	assert.Zero(t, st.OOMs)
	assert.Empty(t, st.Running)
	assert.Empty(t, st.Resident)
	assert.Zero(t, st.BusyNanos)
}

func TestOpenRejectsNegativeIndex(t *testing.T) {
	_, err := Open(t.TempDir(), -1, Options{})
	require.Error(t, err)
}

func TestLoad(t *testing.T) {
	g := openTest(t)
	require.NoError(t, g.Load("a", 12*GiB))
	require.NoError(t, g.Load("a", 14*GiB), "replacing a model counts only the new one")
	err := g.Load("b", 12*GiB)
	require.ErrorIs(t, err, ErrOutOfMemory)
	st, err := g.Stats()
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"a": 14 * GiB}, st.Resident)
	assert.EqualValues(t, 1, st.OOMs)
	assert.Zero(t, st.Jobs)
}

func TestJournalRecordsEveryJobThatBegan(t *testing.T) {
	g, err := Open(t.TempDir(), 0, Options{})
	require.NoError(t, err)
	for _, id := range []string{"a", "b"} {
		j, err := g.Begin("svc", id, GiB)
		require.NoError(t, err)
		require.NoError(t, j.End())
	}
	refs, err := g.Journal()
	require.NoError(t, err)
	require.Len(t, refs, 2)
	assert.Equal(t, "a", refs[0].JobID)
	assert.Equal(t, "b", refs[1].JobID)
	assert.Equal(t, os.Getpid(), refs[1].PID)
	require.NoError(t, g.Reset())
	refs, err = g.Journal()
	require.NoError(t, err)
	assert.Empty(t, refs)
}
