package gateway

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// Model-aware dispatch benchmark timing: a model change costs modelLoad at
// the fake ComfyUI; jobs are 10-30 steps (100-300 ms).
const (
	benchModelLoad = 300 * time.Millisecond
	benchModels    = 4
	benchPrompts   = 40
	benchMachines  = 4
)

// modelJob is one prompt of the mixed-model burst.
type modelJob struct {
	steps int
	model string
}

func modelJobs(seed uint64) []modelJob {
	r := rand.New(rand.NewPCG(seed, 12))
	out := make([]modelJob, benchPrompts)
	for i := range out {
		out[i] = modelJob{steps: 10 + r.IntN(21), model: fmt.Sprintf("model-%d.safetensors", r.IntN(benchModels))}
	}
	return out
}

// runModelJobs sends jobs to e's gateway, every gap apart (0: all at
// once), and waits until its machines ran them all; it returns the
// makespan, the model loads the machines did meanwhile and the prompts'
// mean turnaround (sent -> execution_success at the machine).
func runModelJobs(b *testing.B, e *clusterEnv, jobs []modelJob, gap time.Duration) (makespan time.Duration, loads int64, turnaround time.Duration) {
	b.Helper()
	count := func() (done, loads int64) {
		for _, m := range e.machines {
			c := m.comfy.Counters()
			done += c.Succeeded + c.Failed + c.Interrupted
			loads += c.ModelLoads
		}
		return done, loads
	}
	done0, loads0 := count()
	gw := e.gateways["comfyui"].URL
	start := time.Now()
	var tick <-chan time.Time
	if gap > 0 {
		t := time.NewTicker(gap)
		defer t.Stop()
		tick = t.C
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := map[string]time.Time{}
	for i, j := range jobs {
		if tick != nil && i > 0 {
			<-tick // pacing the arrivals, not synchronisation
		}
		body := modelPrompt(j.steps, int64(i), fmt.Sprintf("u%d", i%8), j.model)
		wg.Go(func() {
			at := time.Now()
			code, _, out := post(b, gw+"/prompt", body)
			var doc struct {
				PromptID string `json:"prompt_id"`
			}
			if code != http.StatusOK || json.Unmarshal([]byte(out), &doc) != nil {
				b.Errorf("status %d: %s", code, out)
				return
			}
			mu.Lock()
			sent[doc.PromptID] = at
			mu.Unlock()
		})
	}
	wg.Wait()
	waitFor(b, "every prompt done", func() bool {
		done, _ := count()
		return done-done0 == int64(len(jobs))
	})
	makespan = time.Since(start)
	_, loads = count()
	var sum time.Duration
	for id, at := range sent {
		waitFor(b, "prompt "+id+" in the history", func() bool { return historyDone(b, gw, id) })
		ended, ok := successAt(b, gw, id)
		if !ok {
			b.Errorf("prompt %s has no execution_success", id)
			continue
		}
		sum += ended.Sub(at)
	}
	return makespan, loads - loads0, sum / time.Duration(max(1, len(sent)))
}

// successAt returns the time of prompt id's execution_success message.
func successAt(b *testing.B, gw, id string) (time.Time, bool) {
	var doc map[string]struct {
		Status struct {
			Messages [][]json.RawMessage `json:"messages"`
		} `json:"status"`
	}
	if getJSONDoc(b, gw+"/history/"+id, &doc) != http.StatusOK {
		return time.Time{}, false
	}
	for _, m := range doc[id].Status.Messages {
		var kind string
		var data struct {
			Timestamp int64 `json:"timestamp"`
		}
		if len(m) == 2 && json.Unmarshal(m[0], &kind) == nil && kind == "execution_success" && json.Unmarshal(m[1], &data) == nil {
			return time.UnixMilli(data.Timestamp), true
		}
	}
	return time.Time{}, false
}

// BenchmarkModelAwareDispatch compares model-aware dispatch with plain
// first-free dispatch (Config.PlainDispatch) in the same run: two clusters
// of 4 one-GPU ComfyUI machines whose fakes charge 300 ms per model change;
// 40 prompts of 4 models (random, fixed seeds), 100-300 ms of work each,
// sent (a) all at once and (b) paced, one every 250 ms (about a fifth of the
// GPUs' capacity without loads). It reports the model loads, makespans
// and mean turnarounds (sent -> done) of both, medians over the runs.
//
//	go test -run '^$' -bench ModelAwareDispatch -benchtime 3x ./internal/gateway/
func BenchmarkModelAwareDispatch(b *testing.B) {
	fake := func(c *fakecomfy.Config) { c.ModelLoad = benchModelLoad }
	aware := newComfyCluster(b, benchMachines, fake, nil)
	plain := newComfyCluster(b, benchMachines, fake, func(c *Config) { c.PlainDispatch = true })
	for _, e := range []*clusterEnv{aware, plain} {
		waitFor(b, "every GPU free", func() bool { return e.freeCount(b, "comfyui") == benchMachines })
	}
	type figures struct{ loads, makespan, turnaround []float64 }
	res := map[string]*figures{}
	add := func(name string, makespan time.Duration, loads int64, turnaround time.Duration) {
		if res[name] == nil {
			res[name] = &figures{}
		}
		res[name].loads = append(res[name].loads, float64(loads))
		res[name].makespan = append(res[name].makespan, makespan.Seconds())
		res[name].turnaround = append(res[name].turnaround, turnaround.Seconds())
	}
	for i := 0; b.Loop(); i++ {
		for _, sc := range []struct {
			name string
			gap  time.Duration
		}{{"burst", 0}, {"paced", 250 * time.Millisecond}} {
			jobs := modelJobs(uint64(i))
			pm, pl, pt := runModelJobs(b, plain, jobs, sc.gap)
			am, al, at := runModelJobs(b, aware, jobs, sc.gap)
			add(sc.name+"-plain", pm, pl, pt)
			add(sc.name+"-aware", am, al, at)
			b.Logf("run %d %s: plain %d loads, makespan %.2fs, mean turnaround %.3fs; model-aware %d loads, makespan %.2fs, mean turnaround %.3fs",
				i, sc.name, pl, pm.Seconds(), pt.Seconds(), al, am.Seconds(), at.Seconds())
		}
	}
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for name, f := range res {
		b.ReportMetric(median(f.loads), name+"-loads")
		b.ReportMetric(median(f.makespan), name+"-makespan-s")
		b.ReportMetric(median(f.turnaround), name+"-turnaround-s")
	}
	for _, e := range []*clusterEnv{aware, plain} {
		for _, m := range e.machines {
			if st, _ := m.gpu.Stats(); st.Overlaps != 0 {
				b.Errorf("%d overlaps on %s", st.Overlaps, m.name)
			}
		}
	}
}
