package metrics_test

import (
	"bytes"
	"fmt"

	"github.com/gpulock/gpulock/internal/metrics"
)

func Example() {
	reg := metrics.NewRegistry()
	jobs := metrics.NewCounterVec(metrics.Opts{Namespace: "gpulock", Name: "jobs_total", Help: "Jobs by outcome.",
		ConstLabels: metrics.Labels{"gpu": "0"}}, []string{"outcome"})
	reg.MustRegister(jobs)
	jobs.WithLabelValues("done").Inc()
	jobs.WithLabelValues("refused").Add(2)

	var buf bytes.Buffer
	reg.WriteText(&buf) // what reg.Handler() serves
	fmt.Print(buf.String())
	// Output:
	// # HELP gpulock_jobs_total Jobs by outcome.
	// # TYPE gpulock_jobs_total counter
	// gpulock_jobs_total{gpu="0",outcome="done"} 1
	// gpulock_jobs_total{gpu="0",outcome="refused"} 2
}
