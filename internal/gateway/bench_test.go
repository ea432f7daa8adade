package gateway

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// benchSteps returns n step counts for jobs of 0.3-1.2 s (30-120 steps
// of stepDuration), from a fixed seed so that runs compare.
func benchSteps(n int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 11))
	out := make([]int, n)
	for i := range out {
		out[i] = 30 + r.IntN(91)
	}
	return out
}

// BenchmarkIssueScenario is issue 11's scenario: 4 one-GPU machines, each
// with a ComfyUI and an A1111 shim; a ComfyUI client with 16 prompts, one
// with 4, and 12 one-shot A1111 jobs, 0.3-1.2 s each, all sent at once
// through the two gateways. It reports the makespan against the lower
// bound max(total work / GPUs, longest job).
//
//	go test -run '^$' -bench IssueScenario -benchtime 3x ./internal/gateway/
func BenchmarkIssueScenario(b *testing.B) {
	e := newCluster(b, 4, []string{"comfyui", "a1111"}, nil)
	waitFor(b, "every member free", func() bool {
		return e.freeCount(b, "a1111") == 4 && e.freeCount(b, "comfyui") == 4
	})
	var ratios []float64
	for i := 0; b.Loop(); i++ {
		steps := benchSteps(32, uint64(i))
		var work, longest time.Duration
		for _, s := range steps {
			d := time.Duration(s) * stepDuration
			work += d
			longest = max(longest, d)
		}
		before := map[string]int64{}
		var jobsBefore int64
		var busyBefore time.Duration
		for _, m := range e.machines {
			st, _ := m.gpu.Stats()
			before[m.name] = st.Jobs
			jobsBefore += st.Jobs
			busyBefore += st.Busy()
		}
		start := time.Now()
		var wg sync.WaitGroup
		send := func(url, body string) {
			wg.Go(func() {
				if code, _, out := post(b, url, body); code != http.StatusOK {
					b.Errorf("status %d: %s", code, out)
				}
			})
		}
		gwC, gwA := e.gateways["comfyui"].URL, e.gateways["a1111"].URL
		// Client A's 16 prompts and client B's 4 arrive as their clients
		// send them, one after another; the one-shot A1111 jobs at once.
		wg.Go(func() {
			for k := range 16 {
				post(b, gwC+"/prompt", fmt.Sprintf(`{"prompt":%s,"client_id":"A"}`, fakecomfy.TextToImagePrompt(steps[k], int64(k))))
			}
		})
		wg.Go(func() {
			for k := range 4 {
				post(b, gwC+"/prompt", fmt.Sprintf(`{"prompt":%s,"client_id":"B"}`, fakecomfy.TextToImagePrompt(steps[16+k], int64(100+k))))
			}
		})
		for k := range 12 {
			send(gwA+"/sdapi/v1/txt2img", fmt.Sprintf(`{"steps":%d}`, steps[20+k]))
		}
		wg.Wait()
		var perGPU []int64
		waitFor(b, "every job done", func() bool {
			var n int64
			perGPU = perGPU[:0]
			for _, m := range e.machines {
				st, _ := m.gpu.Stats()
				if len(st.Running) > 0 {
					return false
				}
				n += st.Jobs
				perGPU = append(perGPU, st.Jobs-before[m.name])
			}
			return n-jobsBefore == 32
		})
		makespan := time.Since(start)
		var busy time.Duration
		for _, m := range e.machines {
			st, _ := m.gpu.Stats()
			busy += st.Busy()
		}
		busy -= busyBefore
		bound := max(work/4, longest)
		ratio := makespan.Seconds() / bound.Seconds()
		ratios = append(ratios, ratio)
		b.Logf("run %d: makespan %.2fs, lower bound %.2fs (work %.2fs / 4 GPUs, longest %.2fs), ratio %.2f; "+
			"GPUs busy %.2fs (%.0f%% of 4 x makespan); jobs per GPU %v",
			i, makespan.Seconds(), bound.Seconds(), work.Seconds(), longest.Seconds(), ratio,
			busy.Seconds(), 100*busy.Seconds()/(4*makespan.Seconds()), perGPU)
	}
	for _, m := range e.machines {
		st, _ := m.gpu.Stats()
		if st.Overlaps != 0 {
			b.Errorf("%d overlaps on %s", st.Overlaps, m.name)
		}
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)-1], "worst-makespan/bound")
	b.ReportMetric(ratios[0], "best-makespan/bound")
}

// BenchmarkDispatchLatency measures free -> start: 4 machines, 40 A1111
// jobs of 100 ms sent at once; on each GPU, the gap from the end of one
// job at the backend to the start of the next (which was waiting in the
// cluster's line) is the time the cluster takes to hand a freed GPU on.
// The same run measures the local hand-off beside it: 12 jobs sent at once
// straight to each machine's shim wait in its own line.
//
//	go test -run '^$' -bench DispatchLatency -benchtime 3x ./internal/gateway/
func BenchmarkDispatchLatency(b *testing.B) {
	tr := &tracer{runs: map[string][][2]time.Time{}}
	e := newTracedCluster(b, 4, []string{"a1111"}, nil, tr)
	waitFor(b, "every member free", func() bool { return e.freeCount(b, "a1111") == 4 })
	var gaps, local []time.Duration
	collect := func() []time.Duration {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		var out []time.Duration
		for _, runs := range tr.runs {
			slices.SortFunc(runs, func(x, y [2]time.Time) int { return x[0].Compare(y[0]) })
			for k := 1; k < len(runs); k++ {
				out = append(out, runs[k][0].Sub(runs[k-1][1]))
			}
		}
		clear(tr.runs)
		return out
	}
	send := func(url string, n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if code, _, out := post(b, url+"/sdapi/v1/txt2img", `{"steps":10}`); code != http.StatusOK {
					b.Errorf("status %d: %s", code, out)
				}
			})
		}
		wg.Wait()
	}
	for b.Loop() {
		collect()
		send(e.gateways["a1111"].URL, 40)
		gaps = append(gaps, collect()...)
		var wg sync.WaitGroup
		for _, m := range e.machines {
			wg.Go(func() { send(m.front["a1111"].URL, 12) })
		}
		wg.Wait()
		local = append(local, collect()...)
	}
	slices.Sort(gaps)
	slices.Sort(local)
	b.ReportMetric(msOf(quantile(gaps, 0.5)), "p50-ms")
	b.ReportMetric(msOf(quantile(gaps, 0.99)), "p99-ms")
	b.ReportMetric(msOf(quantile(gaps, 1)), "max-ms")
	b.ReportMetric(msOf(quantile(local, 0.5)), "local-p50-ms")
	b.ReportMetric(msOf(quantile(local, 0.99)), "local-p99-ms")
}
