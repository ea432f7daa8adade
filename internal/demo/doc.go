// Package demo is `gpulock demo`: it starts, on loopback, a fake ComfyUI and
// a fake A1111 on each simulated GPU, a gpulock shim in front of each, and
// a mixed load of API clients for both; then the same load straight at the
// backends, without gpulock; and prints both side by side: jobs done,
// overlaps (two jobs on one GPU at once), simulated out-of-memory failures,
// GPU busy time and the wait in line per service.
package demo
