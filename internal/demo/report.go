package demo

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/gpulock/gpulock/internal/loadgen"
)

const (
	serviceComfy = "comfyui"
	serviceA1111 = "a1111"
)

// RunReport is the outcome of one run of the load.
type RunReport struct {
	// Done and Failed count jobs per service.
	Done, Failed map[string]int
	// Overlaps counts moments two jobs ran on one GPU at once.
	Overlaps int64
	// OOMs counts jobs that failed for lack of GPU memory.
	OOMs int64
	// BusyPercent is the GPUs' busy time over the run's time, averaged.
	BusyPercent float64
	// WaitP50 and WaitP95 are the time in line per service.
	WaitP50, WaitP95 map[string]time.Duration
	// Elapsed is the run's time.
	Elapsed time.Duration
}

// recorder collects the jobs' outcomes from many clients.
type recorder struct {
	mu     sync.Mutex
	done   map[string]int
	failed map[string]int
	waits  map[string][]time.Duration
	perGPU map[int]int
}

func newRecorder() *recorder {
	return &recorder{done: map[string]int{}, failed: map[string]int{}, waits: map[string][]time.Duration{}, perGPU: map[int]int{}}
}

func (r *recorder) add(gpu int, service string, res loadgen.Result, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed[service]++
		return
	}
	r.done[service]++
	r.perGPU[gpu]++
	r.waits[service] = append(r.waits[service], res.Wait)
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.done {
		n += v
	}
	for _, v := range r.failed {
		n += v
	}
	return n
}

// collect reads the simulated GPUs' figures after a run.
func collect(stacks []*gpuStack, rec *recorder, elapsed time.Duration) (RunReport, error) {
	rep := RunReport{Done: rec.done, Failed: rec.failed, Elapsed: elapsed,
		WaitP50: map[string]time.Duration{}, WaitP95: map[string]time.Duration{}}
	var busy time.Duration
	for _, st := range stacks {
		s, err := st.gpu.Stats()
		if err != nil {
			return rep, err
		}
		rep.Overlaps += s.Overlaps
		rep.OOMs += s.OOMs
		busy += s.Busy()
	}
	rep.BusyPercent = 100 * busy.Seconds() / (elapsed.Seconds() * float64(len(stacks)))
	for svc, w := range rec.waits {
		rep.WaitP50[svc] = percentile(w, 50)
		rep.WaitP95[svc] = percentile(w, 95)
	}
	return rep, nil
}

// percentile returns the p-th percentile (nearest rank) of d.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

// writeSummary prints both runs side by side.
func writeSummary(w io.Writer, rep Report) {
	row := func(label, with, without string) { fmt.Fprintf(w, "  %-34s %14s %14s\n", label, with, without) }
	row("", "with gpulock", "without")
	for _, svc := range []string{serviceComfy, serviceA1111} {
		row("jobs completed ("+svc+")", jobs(rep.With, svc), jobs(rep.Without, svc))
	}
	row("overlaps (two jobs on one GPU)", fmt.Sprint(rep.With.Overlaps), fmt.Sprint(rep.Without.Overlaps))
	row("out-of-memory failures", fmt.Sprint(rep.With.OOMs), fmt.Sprint(rep.Without.OOMs))
	row("GPU busy", fmt.Sprintf("%.0f%%", rep.With.BusyPercent), fmt.Sprintf("%.0f%%", rep.Without.BusyPercent))
	for _, svc := range []string{serviceComfy, serviceA1111} {
		row("wait in line p50 / p95 ("+svc+")", fmt.Sprintf("%s / %s", short(rep.With.WaitP50[svc]), short(rep.With.WaitP95[svc])), "-")
	}
	row("time", short(rep.With.Elapsed), short(rep.Without.Elapsed))
	fmt.Fprintln(w)
	if rep.With.Overlaps == 0 && rep.With.OOMs == 0 {
		fmt.Fprintln(w, "With gpulock every job waited its turn: no overlaps, no out-of-memory failures.")
	}
}

func jobs(r RunReport, svc string) string {
	return fmt.Sprintf("%d/%d", r.Done[svc], r.Done[svc]+r.Failed[svc])
}

func short(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
}
