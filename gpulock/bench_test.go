//go:build linux

package gpulock

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"
)

// Benchmarks of the lock beside plain flock(2) and github.com/gofrs/flock.
// docs/BENCHMARKS.md has the figures and the commands that produced them.

// BenchmarkUncontended takes and gives back a free lock, nobody else around.
// The gpulock sub-benchmarks also report their cost as a multiple of the
// plain flock(2) sub-benchmark of the same run (x-flock). Each also reports
// the CPU time the process used per operation (cpu-ns/op, user and system,
// from getrusage), and the gpulock ones its multiple of flock's
// (x-flock-cpu): on a shared machine the wall time also counts the waits
// for a CPU, the CPU time does not.
func BenchmarkUncontended(b *testing.B) {
	var rawNs, rawCPU float64 // per op of the flock sub-benchmark, for x-flock
	var cpuStart time.Duration
	startCPU := func(b *testing.B) { b.ResetTimer(); cpuStart = benchCPUTime(b) }
	cpuPerOp := func(b *testing.B) float64 {
		ns := float64((benchCPUTime(b) - cpuStart).Nanoseconds()) / float64(b.N)
		b.ReportMetric(ns, "cpu-ns/op")
		return ns
	}
	reportRatio := func(b *testing.B) {
		cpu := cpuPerOp(b)
		if rawNs > 0 && rawCPU > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/rawNs, "x-flock")
			b.ReportMetric(cpu/rawCPU, "x-flock-cpu")
		}
	}
	b.Run("flock", func(b *testing.B) { // open + flock(LOCK_EX) + flock(LOCK_UN) + close
		path := filepath.Join(b.TempDir(), benchRawLock)
		benchCreate(b, path)
		startCPU(b)
		for b.Loop() {
			fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
				b.Fatal(err)
			}
			if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
				b.Fatal(err)
			}
			if err := unix.Close(fd); err != nil {
				b.Fatal(err)
			}
		}
		rawNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		rawCPU = cpuPerOp(b)
	})
	b.Run("gofrs", func(b *testing.B) { // New + Lock + Unlock (which closes)
		path := filepath.Join(b.TempDir(), benchRawLock)
		benchCreate(b, path)
		startCPU(b)
		for b.Loop() {
			f := flock.New(path)
			if err := f.Lock(); err != nil {
				b.Fatal(err)
			}
			if err := f.Unlock(); err != nil {
				b.Fatal(err)
			}
		}
		reportRatio(b)
	})
	acquires := []struct {
		name     string
		queueDir bool // the queue directory exists, as it does after any contention
		acquire  func(*Lock) (*Handle, error)
	}{
		{"gpulock-TryAcquire", false, (*Lock).TryAcquire},
		{"gpulock-Acquire", false, func(l *Lock) (*Handle, error) { return l.Acquire(context.Background()) }},
		{"gpulock-TryAcquire-queuedir", true, (*Lock).TryAcquire},
		{"gpulock-Acquire-queuedir", true, func(l *Lock) (*Handle, error) { return l.Acquire(context.Background()) }},
	}
	for _, a := range acquires {
		b.Run(a.name, func(b *testing.B) {
			l, err := New(0, WithDir(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			if a.queueDir {
				if err := ensureQueueDir(l.queueDir()); err != nil {
					b.Fatal(err)
				}
			}
			startCPU(b)
			for b.Loop() {
				h, err := a.acquire(l)
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Release(); err != nil {
					b.Fatal(err)
				}
			}
			reportRatio(b)
		})
	}
}

// benchCPUTime returns the CPU time, user and system, this process has used.
func benchCPUTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCreate makes an empty lock file at path.
func benchCreate(b *testing.B, path string) {
	b.Helper()
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHandoff measures how long the lock takes to pass from one
// process to another that waits for it: from the moment the holder calls
// release to the moment the waiter holds the lock. Two processes take b.N+1
// turns in all (see handoffPlayer); p50 and p99 are over the b.N handoffs.
//
//   - gpulock: Acquire and Release; fairness makes the two alternate.
//   - flock: flock(2) LOCK_EX, blocking; the releaser waits for the other's
//     "got it" before asking again, since flock would let it barge.
//   - gofrs: TryLockContext with a 10 ms retry delay, released at a random
//     point of the waiter's retry cycle.
func BenchmarkHandoff(b *testing.B) {
	for _, kind := range []string{"gpulock", "flock", "gofrs"} {
		b.Run(kind, func(b *testing.B) { benchHandoff(b, kind) })
	}
}

func benchHandoff(b *testing.B, kind string) {
	dir := b.TempDir()
	shm, err := openBenchShm(filepath.Join(dir, benchShmFile))
	if err != nil {
		b.Fatal(err)
	}
	defer shm.close()
	lk, err := newHandoffLock(kind, dir)
	if err != nil {
		b.Fatal(err)
	}
	total := b.N + 1
	mine, theirs := (total+1)/2, total/2
	out := filepath.Join(dir, "child-latencies")
	c := startBenchChild(b, "handoff", envBenchDir+"="+dir, envBenchKind+"="+kind,
		envBenchTurns+"="+strconv.Itoa(theirs), envBenchTotal+"="+strconv.Itoa(total), envBenchOut+"="+out)
	p := &handoffPlayer{lk: lk, shm: shm, peer: benchPeer{r: c.out, w: c.in}, starter: true, turns: mine, total: total}
	b.ResetTimer()
	lat, err := p.play()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if err := c.wait(); err != nil {
		b.Fatal("handoff child: ", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Fields(string(data)) {
		ns, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Duration(ns))
	}
	if len(lat) != b.N {
		b.Fatalf("got %d handoff samples, want %d", len(lat), b.N)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(benchPercentile(lat, 50)), "p50-ns/handoff")
	b.ReportMetric(float64(benchPercentile(lat, 99)), "p99-ns/handoff")
	b.ReportMetric(float64(lat[len(lat)-1]), "max-ns/handoff")
}

// benchPercentile returns the nearest-rank pth percentile of sorted.
func benchPercentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// benchCPUWaiters and benchCPUInterval shape BenchmarkWaitingCPU.
const (
	benchCPUWaiters  = 50
	benchCPUInterval = 5 * time.Second
	// benchPollEvery is how often the waiters' state is checked while they start.
	benchPollEvery = 5 * time.Millisecond
)

// BenchmarkWaitingCPU measures the CPU that 50 processes use in 5 s while
// they wait in Acquire for a lock this process holds. The clock starts once
// all 50 are in line and blocked in flock(2). It measures once whatever b.N
// is; run it with -benchtime=1x.
func BenchmarkWaitingCPU(b *testing.B) {
	dir := b.TempDir()
	l, err := New(0, WithDir(dir))
	if err != nil {
		b.Fatal(err)
	}
	h, err := l.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	pids := make([]int, 0, benchCPUWaiters)
	for range benchCPUWaiters {
		c := startBenchChild(b, "wait", envBenchDir+"="+dir)
		pids = append(pids, c.cmd.Process.Pid)
	}
	deadline := time.Now().Add(benchTimeout)
	for !benchAllWaiting(b, l, pids) {
		if time.Now().After(deadline) {
			b.Fatalf("%d waiters not all in line and blocked within %v", benchCPUWaiters, benchTimeout)
		}
		time.Sleep(benchPollEvery)
	}
	before, err := benchCPU(pids)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(benchCPUInterval) // the interval measured, not a synchronisation
	after, err := benchCPU(pids)
	if err != nil {
		b.Fatal(err)
	}
	used := after - before
	b.Logf("%d waiters had run %v on the CPU before the interval (starting up and queueing), %v during the %v measured",
		benchCPUWaiters, before, used, benchCPUInterval)
	b.ReportMetric(0, "ns/op") // one measurement, whatever b.N is
	b.ReportMetric(float64(used.Nanoseconds()), "cpu-ns/5s")
	b.ReportMetric(float64(used.Nanoseconds())/benchCPUWaiters, "cpu-ns/waiter/5s")
}

// benchAllWaiting reports whether every pid has a ticket in l's line and is
// blocked in flock(2).
func benchAllWaiting(b *testing.B, l *Lock, pids []int) bool {
	b.Helper()
	st, err := l.Status()
	if err != nil {
		b.Fatal(err)
	}
	if len(st.Waiters) != len(pids) {
		return false
	}
	_, byPID, err := flockBlockedBy()
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		if byPID[uint64(pid)] == 0 {
			return false
		}
	}
	return true
}
