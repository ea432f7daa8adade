// Package fakecomfy is a fake ComfyUI server for tests and demos. It follows
// the HTTP and websocket API described in shared/BACKENDS.md closely enough
// for real ComfyUI API clients: every route bare and under /api, an
// asynchronous prompt queue run by one worker goroutine, history, interrupt,
// /free, and the websocket event stream in ComfyUI's order.
//
// GPU work is simulated on a simgpu.GPU: a prompt with a KSampler begins a
// job for service "comfyui" when the first KSampler runs, sleeps
// StepDuration per sampling step, and ends the job before the prompt's final
// event. Models stay resident after a prompt until POST /free.
//
// Like ComfyUI, per-prompt websocket events (progress included) go only to
// the sockets of the prompt's client_id, or to every socket when the prompt
// has none; status frames go to every socket. Node results are never cached:
// every prompt runs all its nodes.
package fakecomfy
