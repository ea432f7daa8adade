package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/stretchr/testify/require"
)

// benchLease is the members' and gateways' lease in the scale benchmarks.
const benchLease = 5 * time.Second

// startGateway starts a gateway for profile on the Redis at r.
func startGateway(t testing.TB, r *redistest.Server, profile string) (*Gateway, string) {
	t.Helper()
	g, err := New(Config{Profile: profile, Store: newStore(t, r), Lease: benchLease, Logger: quietLogger()})
	require.NoError(t, err)
	g.Start()
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	return g, srv.URL
}

// postSteps posts an A1111 job for client and reports a failure to t.
func postSteps(t testing.TB, url, client string, steps int) {
	req, err := http.NewRequest(http.MethodPost, url+"/sdapi/v1/txt2img", strings.NewReader(fmt.Sprintf(`{"steps":%d}`, steps)))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(shim.HeaderClient, client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d: %s", resp.StatusCode, b)
	}
}

// idleWhileWaiting integrates min(idle GPUs, waiting jobs) over time, for
// jobs sent at the times in sent and run as runs (per GPU): the GPU time
// the line left idle while a job it could have run waited. work is the
// runs' total length; ramp is the part of idle before every GPU first had
// a job (the line filling as the gateway accepts the burst).
func idleWhileWaiting(gpus int, sent []time.Time, runs [][][2]time.Time) (idle, ramp, work time.Duration) {
	type event struct {
		at               time.Time
		waiting, running int
	}
	var evs []event
	for _, s := range sent {
		evs = append(evs, event{at: s, waiting: 1})
	}
	for _, gpu := range runs {
		for _, r := range gpu {
			evs = append(evs, event{at: r[0], waiting: -1, running: 1}, event{at: r[1], running: -1})
			work += r[1].Sub(r[0])
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	waiting, running, started := 0, 0, 0
	for i, e := range evs {
		if i > 0 {
			d := time.Duration(min(gpus-running, max(waiting, 0))) * e.at.Sub(evs[i-1].at)
			idle += d
			if started < gpus {
				ramp += d
			}
		}
		if e.running > 0 {
			started++
		}
		waiting += e.waiting
		running += e.running
	}
	return idle, ramp, work
}

// handoffGaps returns, per GPU, the gaps between the end of a job and the
// start of the next one that ended before the last job of all started:
// every job was sent at once, so until then one waited for each gap.
func handoffGaps(runs [][][2]time.Time) []time.Duration {
	var last time.Time
	for _, gpu := range runs {
		for _, r := range gpu {
			if r[0].After(last) {
				last = r[0]
			}
		}
	}
	var gaps []time.Duration
	for _, gpu := range runs {
		slices.SortFunc(gpu, func(x, y [2]time.Time) int { return x[0].Compare(y[0]) })
		for k := 1; k < len(gpu); k++ {
			if gpu[k-1][1].Before(last) {
				gaps = append(gaps, gpu[k][0].Sub(gpu[k-1][1]))
			}
		}
	}
	slices.Sort(gaps)
	return gaps
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(q*float64(len(d)-1))]
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// redisStats is what the scale benchmarks read from INFO.
type redisStats struct {
	calls   map[string]int64 // per command, from commandstats
	cpu     time.Duration    // used_cpu_user + used_cpu_sys
	memory  int64            // used_memory
	clients int64
}

func readRedis(t testing.TB, st *cluster.Store) redisStats {
	t.Helper()
	out, err := st.Client().Info(context.Background(), "commandstats", "cpu", "memory", "clients").Result()
	require.NoError(t, err)
	s := redisStats{calls: map[string]int64{}}
	var cpu float64
	for line := range strings.SplitSeq(out, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(k, "cmdstat_"):
			calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			n, _ := strconv.ParseInt(calls, 10, 64)
			s.calls[strings.TrimPrefix(k, "cmdstat_")] = n
		case k == "used_cpu_user" || k == "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		case k == "used_memory":
			s.memory, _ = strconv.ParseInt(v, 10, 64)
		case k == "connected_clients":
			s.clients, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	s.cpu = time.Duration(cpu * float64(time.Second))
	return s
}

// since returns the commands run between before and s: all of them, and
// the scripts among them (EVALSHA, EVAL).
func (s redisStats) since(before redisStats) (all, scripts int64) {
	for k, n := range s.calls {
		d := n - before.calls[k]
		if k == "info" {
			continue
		}
		all += d
		if k == "evalsha" || k == "eval" {
			scripts += d
		}
	}
	return all, scripts
}

// fleetIDs names gpus GPUs on machines: counts[i] GPUs on machine i.
func fleetIDs(counts ...int) []string {
	var ids []string
	for m, n := range counts {
		for g := range n {
			ids = append(ids, cluster.GPUID(fmt.Sprint("m", m+1), g, "a1111"))
		}
	}
	return ids
}

// BenchmarkWorkConservation30 is issue 11's 30-GPU figure: 3 machines of
// 8 GPUs and 6 of 1 (in-process fake shims), one gateway; three clients
// send 120, 80 and 40 A1111 jobs of 0.3-1.2 s at once. It reports the GPU
// time left idle while a job waited, against the work.
//
//	go test -run '^$' -bench WorkConservation30 -benchtime 3x ./internal/gateway/
func BenchmarkWorkConservation30(b *testing.B) {
	r := redistest.Start(b)
	ids := fleetIDs(8, 8, 8, 1, 1, 1, 1, 1, 1)
	fleet := newFakeFleet(b, newStore(b, r), ids, benchLease)
	_, gw := startGateway(b, r, "a1111")
	var worst float64
	for i := 0; b.Loop(); i++ {
		steps := benchSteps(240, uint64(i))
		var nominal, longest time.Duration
		for _, s := range steps {
			nominal += time.Duration(s) * stepDuration
			longest = max(longest, time.Duration(s)*stepDuration)
		}
		sent := make([]time.Time, len(steps))
		start := time.Now()
		var wg sync.WaitGroup
		for k, s := range steps {
			client := []string{"A", "A", "A", "B", "B", "C"}[k%6] // 120, 80, 40
			sent[k] = time.Now()
			wg.Go(func() { postSteps(b, gw, client, s) })
		}
		wg.Wait()
		makespan := time.Since(start)
		runs := fleet.allRuns()
		n := 0
		for _, g := range runs {
			n += len(g)
		}
		if n != len(steps) {
			b.Fatalf("%d runs for %d jobs", n, len(steps))
		}
		idle, ramp, work := idleWhileWaiting(len(ids), sent, runs)
		pct := 100 * idle.Seconds() / work.Seconds()
		worst = max(worst, pct)
		bound := max(nominal/time.Duration(len(ids)), longest)
		b.Logf("run %d: %d jobs on %d GPUs, work %.1fs, idle while a job waited %.2f GPU-s (%.2f%% of the work; %.2f GPU-s before every GPU had its first job); makespan %.2fs, bound %.2fs (ratio %.2f)",
			i, n, len(ids), work.Seconds(), idle.Seconds(), pct, ramp.Seconds(), makespan.Seconds(), bound.Seconds(), makespan.Seconds()/bound.Seconds())
	}
	b.ReportMetric(worst, "worst-idle-%")
}

// BenchmarkScale300 is issue 12's 300-GPU figure: 300 fake shims on one
// Redis, two gateways; 600 A1111 jobs of 1-2 s sent at once, half to each.
// It reports the dispatch latency (end of a job -> start of the next on
// that GPU), Redis commands and Redis CPU per job, and Redis's CPU while
// the 300 GPUs sit free (their re-offers).
//
//	go test -run '^$' -bench Scale300 -benchtime 3x ./internal/gateway/
func BenchmarkScale300(b *testing.B) {
	r := redistest.Start(b)
	ids := fleetIDs(slices.Repeat([]int{1}, 300)...)
	st := newStore(b, r)
	fleet := newFakeFleet(b, st, ids, benchLease)
	_, gw1 := startGateway(b, r, "a1111")
	_, gw2 := startGateway(b, r, "a1111")

	idle0 := readRedis(b, st)
	idleStart := time.Now()
	time.Sleep(2 * time.Second) // measuring the idle fleet's cost over a fixed span, not a synchronisation
	idle1 := readRedis(b, st)
	idleCmds, _ := idle1.since(idle0)
	idleSpan := time.Since(idleStart)
	b.Logf("idle: %d free GPUs cost Redis %.1f%% of a core (%.0f commands/s)", len(ids),
		100*(idle1.cpu-idle0.cpu).Seconds()/idleSpan.Seconds(), float64(idleCmds)/idleSpan.Seconds())

	before := readRedis(b, st)
	jobs := 0
	var gaps []time.Duration
	for i := 0; b.Loop(); i++ {
		var wg sync.WaitGroup
		for k := range 600 {
			url := []string{gw1, gw2}[k%2]
			wg.Go(func() { postSteps(b, url, fmt.Sprint("c", k%20), 100+(k*37)%101) })
		}
		wg.Wait()
		jobs += 600
		gaps = append(gaps, handoffGaps(fleet.allRuns())...)
	}
	after := readRedis(b, st)
	slices.Sort(gaps)
	all, scripts := after.since(before)
	cpuPerJob := (after.cpu - before.cpu) / time.Duration(jobs)
	b.Logf("%d jobs, %d hand-overs: dispatch p50 %.2f ms, p99 %.2f ms, max %.2f ms; Redis: %.1f commands per job (%.1f scripts), %d us CPU per job",
		jobs, len(gaps), msOf(quantile(gaps, 0.5)), msOf(quantile(gaps, 0.99)), msOf(quantile(gaps, 1)),
		float64(all)/float64(jobs), float64(scripts)/float64(jobs), cpuPerJob.Microseconds())
	var top []string
	for k, n := range after.calls {
		if d := n - before.calls[k]; d > 0 && k != "info" {
			top = append(top, fmt.Sprintf("%s %.2f", k, float64(d)/float64(jobs)))
		}
	}
	slices.Sort(top)
	b.Logf("per job: %s", strings.Join(top, ", "))
	b.ReportMetric(msOf(quantile(gaps, 0.5)), "p50-ms")
	b.ReportMetric(msOf(quantile(gaps, 0.99)), "p99-ms")
	b.ReportMetric(float64(all)/float64(jobs), "redis-cmds/job")
	b.ReportMetric(float64(cpuPerJob.Microseconds()), "redis-cpu-us/job")
}

// BenchmarkLine10k is issue 12's line figure: 10,000 ComfyUI prompts
// accepted by two gateways while the one machine's GPU stays busy, so that
// all wait in the line. It reports the time to accept them, Redis's and
// the gateways' memory per waiting prompt, Redis's load while they wait,
// and how long a GPU's offer takes with them all in line.
//
//	go test -run '^$' -bench Line10k -benchtime 1x ./internal/gateway/
func BenchmarkLine10k(b *testing.B) {
	const prompts = 10000
	r := redistest.Start(b)
	st := newStore(b, r)
	gpu, err := simgpu.Open(b.TempDir(), 0, simgpu.Options{})
	require.NoError(b, err)
	comfy, err := fakecomfy.New(fakecomfy.Config{GPU: gpu, StepDuration: stepDuration})
	require.NoError(b, err)
	b.Cleanup(func() { _ = comfy.Close() })
	backend := httptest.NewServer(comfy) // /object_info for the gateways' checks; never offered
	b.Cleanup(backend.Close)
	ctx := context.Background()
	require.NoError(b, st.Register(ctx, "busy/0/comfyui", "comfyui", "t", backend.URL, time.Hour))
	_, gw1 := startGateway(b, r, "comfyui")
	_, gw2 := startGateway(b, r, "comfyui")
	for i := 0; b.Loop(); i++ {
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		r0 := readRedis(b, st)
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		for range 16 {
			wg.Go(func() {
				for k := range next {
					url := []string{gw1, gw2}[k%2]
					body := fmt.Sprintf(`{"prompt":%s,"client_id":"c%d"}`, fakecomfy.TextToImagePrompt(20, int64(i*prompts+k)), k%10)
					if code, _, out := post(b, url+"/prompt", body); code != http.StatusOK {
						b.Errorf("status %d: %s", code, out)
					}
				}
			})
		}
		for k := range prompts {
			next <- k
		}
		close(next)
		wg.Wait()
		accept := time.Since(start)
		n, err := st.Client().ZCard(ctx, "gpulock:line").Result()
		require.NoError(b, err)
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		r1 := readRedis(b, st)
		heap := int64(m1.HeapAlloc+m1.StackInuse) - int64(m0.HeapAlloc+m0.StackInuse)
		b.Logf("%d prompts accepted in %.2fs (%.0f/s), %d in line; Redis memory %.0f bytes per prompt, gateways' heap+stacks %.0f bytes per prompt",
			prompts, accept.Seconds(), prompts/accept.Seconds(), n,
			float64(r1.memory-r0.memory)/prompts, float64(heap)/prompts)

		w0, span := readRedis(b, st), 2*time.Second
		time.Sleep(span) // measuring the waiting line's cost over a fixed span, not a synchronisation
		w1 := readRedis(b, st)
		cmds, _ := w1.since(w0)
		b.Logf("while they wait: Redis %.0f commands/s, %.1f%% of a core", float64(cmds)/span.Seconds(), 100*(w1.cpu-w0.cpu).Seconds()/span.Seconds())

		// A freed GPU of the other profile scans the line for a job it can serve.
		id := fmt.Sprint("other", i, "/0/a1111")
		require.NoError(b, st.Register(ctx, id, "a1111", "t", "http://127.0.0.1:1", time.Hour))
		t0 := time.Now()
		out, _, err := st.Offer(ctx, id, "a1111", "t", time.Second)
		require.NoError(b, err)
		b.Logf("an a1111 GPU's offer with %d ComfyUI prompts in line: %s in %.2f ms", n, out, msOf(time.Since(t0)))
		b.ReportMetric(prompts/accept.Seconds(), "accepted/s")
		b.ReportMetric(float64(r1.memory-r0.memory)/prompts, "redis-B/prompt")
		b.ReportMetric(float64(heap)/prompts, "gateway-B/prompt")
	}
}
