// Command fairbench measures fair turns between clients on one simulated
// GPU (one gpulock lock in a temporary directory, jobs that hold it for a
// fixed time), fair against plain arrival order, in one run:
//
//	go run ./scripts/fairbench [-job 100ms]
//
// It prints, for docs/BENCHMARKS.md: how many of client A's 16 queued jobs
// run before client B's one job, sent a moment later; the spread of the
// shares of 10 clients with 1-20 jobs each while all of them wait, and the
// total time; and when a low job starts under a steady stream of normal
// ones, against the aging bound.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

func main() {
	job := flag.Duration("job", 100*time.Millisecond, "how long each job holds the GPU")
	flag.Parse()
	for _, fair := range []bool{true, false} {
		name := map[bool]string{true: "fair", false: "arrival order"}[fair]
		before := burst(*job, fair)
		spread, total := tenClients(*job/5, fair)
		fmt.Printf("%-13s  B starts after %2d of A's jobs | 10 clients: share spread %5.1f%%, total %v\n",
			name, before, spread*100, total.Round(time.Millisecond))
	}
	aging := 20 * *job
	wait := lowUnderStream(*job, aging)
	fmt.Printf("low job under a stream of normal jobs (aging %v): started after %v (bound: aging + one job = %v)\n",
		aging, wait.Round(time.Millisecond), aging+*job)
}

// newLock returns a lock on a fresh simulated GPU.
func newLock(opts ...gpulock.Option) *gpulock.Lock {
	dir, err := os.MkdirTemp("", "fairbench-")
	check(err)
	l, err := gpulock.New(0, append([]gpulock.Option{gpulock.WithDir(dir)}, opts...)...)
	check(err)
	return l
}

// run queues one job per turn, in order, each in line before the next,
// while the lock is held, then lets them run; it returns the order served.
func run(l *gpulock.Lock, turns []gpulock.Turn, hold time.Duration) []int {
	first, err := l.Acquire(context.Background())
	check(err)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i, t := range turns {
		queued := make(chan struct{})
		wg.Go(func() {
			go func() { time.Sleep(time.Millisecond); close(queued) }() // bench pacing only, not synchronisation of results
			h, err := l.AcquireTurn(context.Background(), t)
			check(err)
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			time.Sleep(hold) // the job
			check(h.Release())
		})
		<-queued
	}
	check(first.Release())
	wg.Wait()
	return order
}

func burst(job time.Duration, fair bool) int {
	var turns []gpulock.Turn
	for range 16 {
		turns = append(turns, gpulock.Turn{Client: "A"})
	}
	turns = append(turns, gpulock.Turn{Client: "B"})
	order := run(newLock(gpulock.WithFairTurns(fair)), turns, job)
	return slices.Index(order, 16)
}

// tenClients: client c has c*2 jobs (2..20); the shares are counted while
// every client still has a job waiting.
func tenClients(job time.Duration, fair bool) (float64, time.Duration) {
	var turns []gpulock.Turn
	owner := []int{}
	for c := range 10 {
		for range 2 * (c + 1) {
			turns = append(turns, gpulock.Turn{Client: fmt.Sprint("c", c)})
			owner = append(owner, c)
		}
	}
	start := time.Now()
	order := run(newLock(gpulock.WithFairTurns(fair)), turns, job)
	total := time.Since(start)
	left := make([]int, 10)
	for _, c := range owner {
		left[c]++
	}
	share := make([]int, 10)
	for _, i := range order {
		c := owner[i]
		if left[c] == 1 {
			break // c's last job: from here not everyone waits
		}
		left[c]--
		share[c]++
	}
	lo, hi, sum := share[0], share[0], 0
	for _, n := range share {
		lo, hi, sum = min(lo, n), max(hi, n), sum+n
	}
	mean := float64(sum) / 10
	return float64(hi-lo) / mean, total
}

// lowUnderStream starts a low job while normal jobs keep coming, one new
// one queued as each starts, and returns how long the low job waited.
func lowUnderStream(job, aging time.Duration) time.Duration {
	l := newLock(gpulock.WithAging(aging), gpulock.WithFairTurns(false))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var normal func()
	normal = func() {
		wg.Go(func() {
			h, err := l.AcquireTurn(ctx, gpulock.Turn{Client: "n"})
			if err != nil {
				return
			}
			if ctx.Err() == nil {
				normal()
			}
			time.Sleep(job)
			_ = h.Release()
		})
	}
	for range 3 {
		normal()
	}
	time.Sleep(job) // let the stream start
	start := time.Now()
	h, err := l.AcquireTurn(context.Background(), gpulock.Turn{Client: "low", Priority: gpulock.PriorityLow})
	check(err)
	waited := time.Since(start)
	cancel()
	check(h.Release())
	wg.Wait()
	return waited
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fairbench:", err)
		os.Exit(1)
	}
}
