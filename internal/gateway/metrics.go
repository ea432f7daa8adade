package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	instr "github.com/gpulock/gpulock/internal/metrics"
)

// PathMetrics is the gateway's Prometheus metrics (text format): its own
// jobs, and the cluster's line, GPUs and machines as read from Redis at
// each scrape.
const PathMetrics = "/gpulock/metrics"

// Outcomes of the gateway's jobs, the values of jobs_total's label.
const (
	jobDone          = "done"           // dispatched; the backend answered below 400
	jobRefused       = "refused"        // dispatched; the backend answered 400 or above
	jobMachineFailed = "machine_failed" // dispatched; its machine failed while running it (502)
	jobNoMachine     = "no_machine"     // 503: no live machine serves the profile
	jobQueueFull     = "queue_full"     // 503: --max-queue reached
	jobQueueTimeout  = "queue_timeout"  // 503: waited --queue-timeout
	jobClientLeft    = "client_left"    // the client left (or the job was deleted) before it ran
	jobUnreachable   = "cluster_unreachable"
)

// waitBuckets span a job that finds a free GPU at once to an hour in line,
// in seconds.
var waitBuckets = []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// gatewayMetrics are the gateway's instruments, in a registry of its own.
type gatewayMetrics struct {
	g        *Gateway
	registry *instr.Registry
	wait     *instr.Histogram
	jobs     *instr.CounterVec
	requeues *instr.CounterVec

	// Read from Redis at each scrape (refresh), one scrape at a time.
	mu       sync.Mutex
	redisUp  *instr.Gauge
	line     *instr.Gauge
	waiting  *instr.GaugeVec
	gpus     *instr.GaugeVec
	busy     *instr.GaugeVec
	machines *instr.Gauge
}

func newGatewayMetrics(g *Gateway) *gatewayMetrics {
	own := func(name, help string) instr.Opts {
		return instr.Opts{Namespace: "gpulock", Subsystem: "gateway", Name: name, Help: help,
			ConstLabels: instr.Labels{"profile": g.cfg.Profile}}
	}
	cl := func(name, help string) instr.Opts {
		return instr.Opts{Namespace: "gpulock", Subsystem: "gateway", Name: name, Help: help}
	}
	m := &gatewayMetrics{g: g, registry: instr.NewRegistry(),
		wait: instr.NewHistogram(instr.HistogramOpts{Opts: own("wait_seconds",
			"Time this gateway's jobs spent in the cluster's line, from the request's arrival to the dispatch its GPU took."),
			Buckets: waitBuckets}),
		jobs: instr.NewCounterVec(own("jobs_total", "This gateway's jobs by outcome."), []string{"outcome"}),
		requeues: instr.NewCounterVec(own("requeues_total",
			"Dispatches that went back in line: the GPU was busy (409) or its machine unreachable."), []string{"reason"}),
		redisUp: instr.NewGauge(cl("redis_up", "1 if the last scrape read the cluster's state from Redis, else 0.")),
		line:    instr.NewGauge(cl("line_length", "Jobs waiting in the cluster's line, all profiles.")),
		waiting: instr.NewGaugeVec(cl("line_length_by_profile",
			"Jobs waiting in the cluster's line by profile, counted among the first 100 of the line."), []string{"profile"}),
		gpus:     instr.NewGaugeVec(cl("gpus", "GPUs registered in the cluster (live leases), by profile."), []string{"profile"}),
		busy:     instr.NewGaugeVec(cl("gpus_busy", "Registered GPUs not offered: running a job or reserved for one, by profile."), []string{"profile"}),
		machines: instr.NewGauge(cl("machines_alive", "Machines with at least one GPU registered (a live lease).")),
	}
	m.registry.MustRegister(m.wait, m.jobs, m.requeues, m.redisUp, m.line, m.waiting, m.gpus, m.busy, m.machines)
	m.registry.MustRegister(instr.ProcessCollectors()...) // go_*, process_*
	for _, o := range []string{jobDone, jobRefused, jobMachineFailed, jobNoMachine, jobQueueFull, jobQueueTimeout, jobClientLeft, jobUnreachable} {
		m.jobs.WithLabelValues(o) // every outcome shows, at 0
	}
	return m
}

// serve answers PathMetrics and reports whether it did.
func (m *gatewayMetrics) serve(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != PathMetrics {
		return false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		ctx, cancel := context.WithTimeout(r.Context(), viewTimeout)
		defer cancel()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.refresh(ctx)
	}
	m.registry.Handler().ServeHTTP(w, r)
	return true
}

// refresh sets the cluster's gauges from Redis; when Redis cannot be read
// they are left out (not stale) and redis_up is 0.
func (m *gatewayMetrics) refresh(ctx context.Context) {
	for _, v := range []*instr.GaugeVec{m.waiting, m.gpus, m.busy} {
		v.Reset()
	}
	v, err := m.g.cfg.Store.View(ctx)
	if err != nil {
		m.redisUp.Set(0)
		m.line.Set(0)
		m.machines.Set(0)
		return
	}
	m.redisUp.Set(1)
	m.line.Set(float64(v.LineLength))
	for p, n := range v.WaitingByProfile {
		m.waiting.WithLabelValues(p).Set(float64(n))
	}
	nodes := map[string]bool{}
	for _, gpu := range v.GPUs {
		nodes[gpu.Node] = true
		m.gpus.WithLabelValues(gpu.Profile).Inc()
		b := m.busy.WithLabelValues(gpu.Profile)
		if !gpu.Free {
			b.Inc()
		}
	}
	m.machines.Set(float64(len(nodes)))
}

// dispatched counts a job its GPU took, after waited in line, answered
// with status (0: its machine failed).
func (m *gatewayMetrics) dispatched(waited time.Duration, status int) {
	m.wait.Observe(waited.Seconds())
	switch {
	case status == 0:
		m.jobs.WithLabelValues(jobMachineFailed).Inc()
	case status >= 400:
		m.jobs.WithLabelValues(jobRefused).Inc()
	default:
		m.jobs.WithLabelValues(jobDone).Inc()
	}
}

// refused counts a job that got no GPU, by refuse's reasons.
func (m *gatewayMetrics) refused(err error) {
	m.jobs.WithLabelValues(refusalOutcome(err)).Inc()
}

func refusalOutcome(err error) string {
	switch {
	case errors.Is(err, cluster.ErrNoMachine):
		return jobNoMachine
	case errors.Is(err, cluster.ErrQueueFull):
		return jobQueueFull
	case errors.Is(err, errQueueTimeout):
		return jobQueueTimeout
	case errors.Is(err, context.Canceled):
		return jobClientLeft
	}
	return jobUnreachable
}

// requeued counts a dispatch that went back in line: the GPU answered 409
// (busy), else its machine could not be reached.
func (m *gatewayMetrics) requeued(busy bool) {
	reason := "unreachable"
	if busy {
		reason = "busy"
	}
	m.requeues.WithLabelValues(reason).Inc()
}
