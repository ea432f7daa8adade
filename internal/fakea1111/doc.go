// Package fakea1111 is a fake AUTOMATIC1111 stable-diffusion-webui API
// (v1.10 with --api) for tests and demos, following shared/BACKENDS.md.
//
// GPU routes under /sdapi/v1/ are synchronous and serialized by one FIFO
// lock (A1111's queue_lock). A generation begins a simgpu job for service
// "a1111", sleeps StepDuration per step and answers only when done. A client
// that disconnects cancels nothing: the job runs to the end and its result
// is dropped. GET /sdapi/v1/progress shows every job, including jobs started
// with StartLocalJob, which stand for extensions (agent-scheduler) that
// start GPU work with no HTTP request.
package fakea1111
