package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fairMachines is the number of GPUs of the fair-turn tests.
const fairMachines = 4

// sendAs posts an A1111 job of 300 ms (long enough that a batch sent at
// once is all in line before the first job ends) for client (with extra headers),
// counting it in wg, and checks that it ran.
func sendAs(t *testing.T, wg *sync.WaitGroup, url, client string, header http.Header) {
	wg.Go(func() {
		req, err := http.NewRequest(http.MethodPost, url+"/sdapi/v1/txt2img", strings.NewReader(`{"steps":30}`))
		if !assert.NoError(t, err) {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(shim.HeaderClient, client)
		for k, v := range header {
			req.Header.Set(k, v[0])
		}
		resp, err := http.DefaultClient.Do(req)
		if !assert.NoError(t, err) {
			return
		}
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// waitLine waits until n jobs wait in the cluster's line.
func (e *clusterEnv) waitLine(t *testing.T, n int64) {
	t.Helper()
	waitFor(t, "jobs waiting in line", func() bool {
		got, err := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
		return err == nil && got == n
	})
}

// started returns the traced jobs by start, once all n have run, after
// checking that no GPU ran two at once.
func (e *clusterEnv) started(t *testing.T, n int) []tracedJob {
	t.Helper()
	e.tracer.mu.Lock()
	jobs := slices.Clone(e.tracer.jobs)
	e.tracer.mu.Unlock()
	require.Len(t, jobs, n, "every job ran once")
	slices.SortFunc(jobs, func(a, b tracedJob) int { return a.start.Compare(b.start) })
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Zero(t, st.Overlaps, "overlaps on %s", m.name)
	}
	return jobs
}

// waitingOrder returns the clients of the jobs that waited in line, in
// the order they started on gpus GPUs: the first gpus jobs to start are
// the ones that found a GPU free, and the next can start only once one of
// those ends.
func waitingOrder(jobs []tracedJob, gpus int) []string {
	var out []string
	for _, j := range jobs[gpus:] {
		out = append(out, j.client)
	}
	return out
}

// aThenB runs client A's 16 jobs, then, once 12 of them wait, client B's
// one, and returns the jobs by start and when B sent its job.
func aThenB(t *testing.T, gw func(*Config)) []string {
	tr := &tracer{runs: map[string][][2]time.Time{}}
	e := newTracedCluster(t, fairMachines, []string{"a1111"}, gw, tr)
	waitFor(t, "every GPU free", func() bool { return e.freeCount(t, "a1111") == fairMachines })
	url := e.gateways["a1111"].URL
	var wg sync.WaitGroup
	for range 16 {
		sendAs(t, &wg, url, "A", nil)
	}
	e.waitLine(t, 16-fairMachines)
	sentB := time.Now()
	sendAs(t, &wg, url, "B", nil)
	wg.Wait()
	jobs := e.started(t, 17)
	i := slices.IndexFunc(jobs, func(j tracedJob) bool { return j.client == "B" })
	var end time.Time
	for _, j := range jobs {
		if j.end.After(end) {
			end = j.end
		}
	}
	t.Logf("B waited %.3fs in line (A's jobs take 0.3s; 16 of them on %d GPUs: 1.2s); all 17 done %.3fs after B came",
		jobs[i].start.Sub(sentB).Seconds(), fairMachines, end.Sub(sentB).Seconds())
	return waitingOrder(jobs, fairMachines)
}

func TestClusterLineTakesTurnsBetweenClients(t *testing.T) {
	order := aThenB(t, nil)
	// By the rules B is next in line and takes the first GPU that frees;
	// the other GPUs of that round free at about the same time, so up to
	// fairMachines-1 of A's jobs may start at their backends a moment
	// before B's.
	ahead := slices.Index(order, "B")
	t.Logf("jobs of A that started before B's, of the 12 waiting when B came: %d", ahead)
	assert.Less(t, ahead, fairMachines, "B started within one round: %v", order)
}

func TestClusterLineWithoutFairTurnsIsArrivalOrder(t *testing.T) {
	order := aThenB(t, func(c *Config) { c.Turns.ArrivalOrder = true })
	assert.Equal(t, 16-fairMachines, slices.Index(order, "B"), "B waits behind every job of A: %v", order)
}

func TestClusterLinePutsHigherPrioritiesFirst(t *testing.T) {
	// One GPU, so that jobs start one at a time in the order of the line.
	tr := &tracer{runs: map[string][][2]time.Time{}}
	e := newTracedCluster(t, 1, []string{"a1111"}, func(c *Config) { c.Turns.PriorityHeader = true }, tr)
	waitFor(t, "the GPU free", func() bool { return e.freeCount(t, "a1111") == 1 })
	url := e.gateways["a1111"].URL
	var wg sync.WaitGroup
	for range 4 {
		sendAs(t, &wg, url, "A", nil)
	}
	e.waitLine(t, 3)
	sendAs(t, &wg, url, "L", http.Header{shim.HeaderPriority: {"low"}})
	e.waitLine(t, 4)
	sendAs(t, &wg, url, "H", http.Header{shim.HeaderPriority: {"high"}})
	e.waitLine(t, 5)
	wg.Wait()
	// H: one aging step early; L: one step late, after A's second job
	// (which came first) and before A's later rounds.
	assert.Equal(t, []string{"H", "A", "L", "A", "A"}, waitingOrder(e.started(t, 6), 1))
}

func TestJobsClientIsNamedAsByTheShim(t *testing.T) {
	store := newStore(t, redistest.Start(t))
	gw := func(profile string) *Gateway {
		g, err := New(Config{Profile: profile, Store: store, Logger: quietLogger()})
		require.NoError(t, err)
		t.Cleanup(g.Close)
		return g
	}
	req := func(h http.Header) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/prompt", nil)
		r.RemoteAddr = "192.0.2.7:4000"
		for k, v := range h {
			r.Header.Set(k, v[0])
		}
		return r
	}
	comfy, a1111 := gw("comfyui"), gw("a1111")
	assert.Equal(t, "c1", comfy.turnOf(req(http.Header{shim.HeaderClient: {"me"}}), []byte(`{"prompt":{},"client_id":"c1"}`)).Client,
		"ComfyUI's client_id first")
	assert.Equal(t, "me", a1111.turnOf(req(http.Header{shim.HeaderClient: {"me"}}), []byte(`{"client_id":"c1"}`)).Client,
		"client_id means nothing to A1111")
	assert.Equal(t, "addr:192.0.2.7", a1111.turnOf(req(nil), nil).Client)
	assert.Equal(t, gpulock.PriorityNormal, a1111.turnOf(req(http.Header{shim.HeaderPriority: {"high"}}), nil).Priority,
		"the priority header counts only with PriorityHeader")
}
