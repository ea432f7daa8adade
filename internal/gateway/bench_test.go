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
		for _, m := range e.machines {
			st, _ := m.gpu.Stats()
			before[m.name] = st.Jobs
			jobsBefore += st.Jobs
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
		bound := max(work/4, longest)
		ratio := makespan.Seconds() / bound.Seconds()
		ratios = append(ratios, ratio)
		b.Logf("run %d: makespan %.2fs, lower bound %.2fs (work %.2fs / 4 GPUs, longest %.2fs), ratio %.2f, jobs per GPU %v",
			i, makespan.Seconds(), bound.Seconds(), work.Seconds(), longest.Seconds(), ratio, perGPU)
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
