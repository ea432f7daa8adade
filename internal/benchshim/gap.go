package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
)

// gapOpts are the gap benchmark's settings.
type gapOpts struct {
	jobs    int
	clients int
	steps   int
	step    time.Duration
	poll    time.Duration
	limit   time.Duration
	// simDir and lockDir hold the simulated GPU's state and the lock
	// files; empty means under the bench's temporary directory.
	simDir, lockDir string
}

// simState is the part of a simulated GPU's state file (internal/simgpu's
// state.go) that the gap benchmark reads.
type simState struct {
	Running []struct {
		Service   string `json:"service"`
		StartUnix int64  `json:"start_unix_nano"`
	} `json:"running"`
	Jobs      int64 `json:"jobs"`
	Overlaps  int64 `json:"overlaps"`
	OOMs      int64 `json:"ooms"`
	BusyNanos int64 `json:"busy_nanos"`
	BusySince int64 `json:"busy_since"`
}

// busyPeriod is one stretch of time with a job running on the GPU.
type busyPeriod struct {
	service    string
	start, end int64 // unix nanoseconds
}

// gap runs two fake backends on one simulated GPU, each behind a gpulock
// shim in its own process, loads both with jobs, and measures the time
// between one service's job ending and the other's starting.
//
// The times come from the simulated GPU's state file, read (without its
// mutex: the file is replaced by rename) every o.poll: a running job's
// start_unix_nano is when it began, exactly; when the GPU goes idle,
// simgpu adds the busy period's length to busy_nanos, so a period that
// began at busy_since ends at busy_since + the increase, also exactly. A
// poll that finds more than one job begun since the previous poll, or a
// busy period with an unknown start, is counted as missed.
func (b *bench) gap(o gapOpts) error {
	sim, lockDir, err := gapDirs(b.tmp, o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(sim)
	defer os.RemoveAll(lockDir)
	urls := map[string]string{}
	for _, kind := range []string{"comfyui", "a1111"} {
		fake, err := freeAddr()
		if err != nil {
			return err
		}
		if _, err := b.start("fake-"+kind, fake, b.gpulock, "fake", "--listen", fake, "--sim-dir", sim, "--gpu", "0",
			"--step", o.step.String(), kind); err != nil {
			return err
		}
		front, err := freeAddr()
		if err != nil {
			return err
		}
		if _, err := b.start("shim-"+kind, front, b.gpulock, "shim", "--listen", front, "--upstream", "http://"+fake,
			"--gpu", "0", "--profile", kind, "--lock-dir", lockDir); err != nil {
			return err
		}
		urls[kind] = "http://" + front
	}

	statePath := filepath.Join(sim, "simgpu0.json")
	pollCtx, stopPoll := context.WithCancel(b.ctx)
	var periods []busyPeriod
	var missed int
	var last simState
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		periods, missed, last = pollSim(pollCtx, statePath, o.poll)
	}()

	ctx, cancel := context.WithTimeout(b.ctx, o.limit)
	defer cancel()
	start := time.Now()
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for kind, base := range urls {
		var issued atomic.Int64
		for range o.clients {
			wg.Go(func() {
				c := &loadgen.Client{Base: base}
				for ctx.Err() == nil {
					n := issued.Add(1)
					if n > int64(o.jobs) {
						return
					}
					var err error
					if kind == "a1111" {
						_, err = c.RunA1111(ctx, o.steps)
					} else {
						_, _, err = c.RunComfy(ctx, fakecomfy.TextToImagePrompt(o.steps, n))
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", kind, err))
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	_ = sleep(b.ctx, 50*time.Millisecond+4*o.poll) // the last job's end reaches the state file
	stopPoll()
	<-polled
	if ctx.Err() != nil && b.ctx.Err() == nil {
		return fmt.Errorf("the load did not finish within %s", o.limit)
	}

	var cross, same []time.Duration
	byDir := map[string][]time.Duration{}
	for i := 1; i < len(periods); i++ {
		if periods[i].service == "" || periods[i-1].service == "" {
			continue
		}
		g := time.Duration(periods[i].start - periods[i-1].end)
		if periods[i].service != periods[i-1].service {
			cross = append(cross, g)
			dir := periods[i-1].service + " -> " + periods[i].service
			byDir[dir] = append(byDir[dir], g)
		} else {
			same = append(same, g)
		}
	}
	fmt.Printf("%d jobs per service, %d clients each, %d steps of %s, state read every %s; load took %s\n",
		o.jobs, o.clients, o.steps, o.step, o.poll, elapsed.Round(time.Millisecond))
	fmt.Printf("simulated GPU's state in %s, lock files in %s\n", sim, lockDir)
	fmt.Printf("simulated GPU: %d jobs, %d overlaps, %d OOMs; %d busy periods seen, %d missed; %d client errors %v\n",
		last.Jobs, last.Overlaps, last.OOMs, len(periods), missed, failed.Load(), firstErr.Load())
	fmt.Printf("| %-38s | %5s | %9s | %9s | %9s | %9s | %9s |\n", "gap", "count", "min", "p50", "p95", "p99", "max")
	for _, row := range []struct {
		name string
		gaps []time.Duration
	}{{"end -> start, different services", cross}, {"  comfyui -> a1111", byDir["comfyui -> a1111"]},
		{"  a1111 -> comfyui", byDir["a1111 -> comfyui"]}, {"end -> start, same service", same}} {
		if len(row.gaps) == 0 {
			fmt.Printf("| %-38s | %5d | | | | | |\n", row.name, 0)
			continue
		}
		slices.Sort(row.gaps)
		fmt.Printf("| %-38s | %5d | %9s | %9s | %9s | %9s | %9s |\n", row.name, len(row.gaps), us(row.gaps[0]),
			us(rank(row.gaps, 0.50)), us(rank(row.gaps, 0.95)), us(rank(row.gaps, 0.99)), us(row.gaps[len(row.gaps)-1]))
	}
	return nil
}

// gapDirs makes the directories of the simulated GPU's state and of the
// lock files: fresh ones inside o.simDir and o.lockDir where given, else
// under tmp.
func gapDirs(tmp string, o gapOpts) (sim, locks string, err error) {
	made := make([]string, 0, 2)
	for _, base := range []string{o.simDir, o.lockDir} {
		if base == "" {
			base = tmp
		}
		d, err := os.MkdirTemp(base, "gap-")
		if err != nil {
			for _, m := range made {
				os.RemoveAll(m)
			}
			return "", "", fmt.Errorf("benchshim: make a directory in %s: %w", base, err)
		}
		made = append(made, d)
	}
	return made[0], made[1], nil
}

// us rounds d to 10 µs for printing.
func us(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

// rank returns the nearest-rank q-quantile of sorted v.
func rank(v []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// pollSim reads the state file at path every interval until ctx ends and
// returns the busy periods it saw end, in order (an empty one stands for
// one it could not time), the number it could not time, and the last state
// read.
func pollSim(ctx context.Context, path string, interval time.Duration) ([]busyPeriod, int, simState) {
	var periods []busyPeriod
	missed := 0
	var prev simState
	serviceAt := map[int64]string{} // job start -> service
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return periods, missed, prev
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil || len(data) == 0 {
			continue
		}
		var cur simState
		if json.Unmarshal(data, &cur) != nil {
			continue
		}
		for _, r := range cur.Running {
			serviceAt[r.StartUnix] = r.Service
		}
		if d := cur.BusyNanos - prev.BusyNanos; d > 0 {
			svc, known := serviceAt[prev.BusySince]
			switch {
			case prev.BusySince == 0 || !known,
				// another job began and ended between two polls: d is a sum
				cur.Jobs-prev.Jobs > 1 || (cur.Jobs-prev.Jobs == 1 && cur.BusySince == 0):
				missed++
				periods = append(periods, busyPeriod{}) // no gap is taken across it
			default:
				periods = append(periods, busyPeriod{service: svc, start: prev.BusySince, end: prev.BusySince + d})
			}
		}
		prev = cur
	}
}
