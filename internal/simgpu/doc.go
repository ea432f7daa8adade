// Package simgpu simulates a GPU shared by fake backends so that tests and
// demos can see what a real GPU would suffer: two jobs running at once (an
// overlap) and running out of memory when several services keep models
// resident.
//
// The state of GPU N lives in Dir as the JSON file simgpu<N>.json, guarded by
// an flock on simgpu<N>.mutex, so fake backends in separate processes share
// one simulated GPU. (The name gpu<N>.lock is left to the real lock.)
//
// Each running job records the pid of its process; jobs of processes that no
// longer exist are dropped whenever the state is read, so a killed backend
// does not hold the GPU, or fake an overlap, forever.
package simgpu
