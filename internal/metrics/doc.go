// Package metrics is gpulock's small Prometheus instrumentation: counters,
// gauges and histograms, with or without labels, gauges read from a
// callback, and a Registry that serves them in Prometheus's text
// exposition format 0.0.4.
//
// It replaces github.com/prometheus/client_golang in the gpulock binary:
// that library's package initialisation (its default registry, protobuf
// descriptors, procfs) ran in every gpulock process, `gpulock exec`
// included, and cost more than exec's whole start-up budget (issue 15).
// This package does nothing at start-up.
//
// The instruments are safe for concurrent use; Inc, Add, Set and Observe
// take no lock (atomic operations only), and a labelled child is found
// without a lock once it exists. Constructors panic on invalid metric or
// label names, as they are programming errors; Registry.Register returns
// an error on a clash.
package metrics
