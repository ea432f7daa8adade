package shim

import (
	"net/http"
	"strconv"
	"time"

	instr "github.com/gpulock/gpulock/internal/metrics"
)

// Outcomes of GPU requests, the values of the "outcome" label and of the
// log lines' outcome field.
const (
	outcomeDone         = "done"          // forwarded, the job ended
	outcomeRefused      = "refused"       // forwarded, the backend refused it (ComfyUI 400, say)
	outcomeUpstreamDown = "upstream_down" // forwarded, the backend could not be reached
	outcomeQueueFull    = "queue_full"    // 503, nothing forwarded
	outcomeBufferFull   = "buffer_full"   // 503, nothing forwarded: --max-buffered is reached
	outcomeQueueTimeout = "queue_timeout" // 503, nothing forwarded
	outcomeShutdown     = "shutting_down" // 503, nothing forwarded
	outcomeClientLeft   = "client_left"   // the client left while in line
	outcomeLockError    = "lock_error"    // the lock could not be taken
	outcomeMaxHold      = "max_hold"      // released after interrupting a job over --max-hold
)

// metrics are the shim's Prometheus instruments, in a registry of the
// shim's own (served at /gpulock/metrics).
type metrics struct {
	registry     *instr.Registry
	queueLength  *instr.GaugeFunc
	wait         *instr.Histogram
	hold         *instr.Histogram
	requests     *instr.CounterVec
	handoffs     *instr.Counter
	vramFree     *instr.Histogram
	backendBusy  *instr.Counter
	backendCover *instr.Counter
	badRequests  *instr.CounterVec
	buffered     *instr.GaugeFunc
}

// jobBuckets span a quick hand-off to an hour-long job, in seconds.
var jobBuckets = []float64{0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

func newMetrics(s *Shim) *metrics {
	// The labels carry nothing that masking hides (detail.go), so every
	// caller gets the same metrics; control characters are escaped.
	labels := instr.Labels{"service": escapeText(s.cfg.Name), "gpu": strconv.Itoa(s.cfg.GPU)}
	opts := func(name, help string) instr.Opts {
		return instr.Opts{Namespace: "gpulock", Subsystem: "shim", Name: name, Help: help, ConstLabels: labels}
	}
	hist := func(name, help string) *instr.Histogram {
		return instr.NewHistogram(instr.HistogramOpts{Opts: opts(name, help), Buckets: jobBuckets})
	}
	m := &metrics{
		registry: instr.NewRegistry(),
		queueLength: instr.NewGaugeFunc(opts("queue_length", "GPU requests waiting in line in this shim."),
			func() float64 { return float64(s.line.len()) }),
		wait:     hist("wait_seconds", "Time GPU requests spent in line before holding the GPU."),
		hold:     hist("hold_seconds", "Time the GPU lock was held per job, VRAM hand-off included."),
		requests: instr.NewCounterVec(opts("requests_total", "GPU requests by outcome."), []string{"outcome"}),
		handoffs: instr.NewCounter(opts("vram_handoffs_total",
			"Times this backend freed its VRAM before handing the GPU to another service.")),
		vramFree: hist("vram_free_seconds", "Time the backend took to free its VRAM at a hand-off."),
		backendBusy: instr.NewCounter(opts("backend_busy_seconds_total",
			"Time the backend was busy with work the shim did not forward, holding the GPU on its behalf.")),
		backendCover: instr.NewCounter(opts("backend_started_jobs_total",
			"Times the shim found the backend busy with work it did not forward.")),
	}
	m.badRequests = instr.NewCounterVec(opts("bad_requests_total",
		"Requests refused for their body (unreadable, too slow, too large), GPU and pass-through alike."), []string{"reason"})
	m.buffered = instr.NewGaugeFunc(opts("buffered_bytes",
		"Bytes of GPU request bodies held in memory now (bounded by --max-buffered)."),
		func() float64 { return float64(s.budget.inUse()) })
	m.registry.MustRegister(lineTurnGauges(s, opts)...)
	m.registry.MustRegister(instr.ProcessCollectors()...) // go_*, process_*
	m.registry.MustRegister(m.queueLength, m.wait, m.hold, m.requests, m.handoffs, m.vramFree, m.backendBusy, m.backendCover,
		m.badRequests, m.buffered)
	return m
}

// handler serves the metrics in Prometheus's text format.
func (m *metrics) handler() http.Handler { return m.registry.Handler() }

// requestCounts returns gpulock_shim_requests_total by outcome.
func (m *metrics) requestCounts() map[string]float64 {
	out := map[string]float64{}
	m.requests.Each(func(values []string, v float64) { out[values[0]] = v })
	return out
}

// finished counts a GPU request's outcome and, if it held the GPU, its hold time.
func (m *metrics) finished(outcome string, held time.Duration) {
	m.requests.WithLabelValues(outcome).Inc()
	if held > 0 {
		m.hold.Observe(held.Seconds())
	}
}
