// Package shim is the reverse proxy that gpulock runs in front of one web
// UI's port. It holds the machine's GPU lock exactly as long as the backend
// really uses the GPU, so that two UIs on one GPU (ComfyUI and AUTOMATIC1111,
// say) never run a job at the same time and requests wait in line instead of
// failing.
//
// Requests that are not GPU work (pages, static files, JSON APIs,
// websockets other than A1111's job queue, server-sent events, uploads)
// pass straight through and never wait. A GPU request is admitted before
// its body is read (body.go, admit.go): a declared body over MaxBody, a full
// line or a body that does not fit in MaxBuffered, the bytes all requests'
// bodies may hold in memory at once, is refused unread. Its body is then
// read within BodyTimeout (an unreadable one gets 400, a slow one 408, on
// pass-through routes too), then it waits in line for the lock (gpulock's fair turns: first come first served
// in this shim, turns in arrival order with the other shims of the GPU), and
// is forwarded once the lock is held. How long the lock is then held depends
// on the backend, because neither backend is "one HTTP request, one GPU job":
//
//   - comfyui: POST /prompt answers before the work runs. The shim holds the
//     lock from forwarding the prompt until ComfyUI reports it finished
//     (success, error, interrupted, deleted from the queue, or ComfyUI
//     restarted), watching ComfyUI's websocket and /queue.
//   - a1111: the API is synchronous; the lock is held until A1111 answers,
//     even if the client has gone (A1111 keeps generating anyway). The
//     browser UI's jobs run over gradio's /queue/join websocket, which the
//     shim ends itself (gradio.go): it holds the job's data frame until the
//     lock is held and releases on process_completed; with
//     --no-gradio-queue they are POST /run/predict calls, held until A1111
//     answers.
//   - generic: the lock is held for the request's whole life, streamed
//     response body included.
//
// A 503 from the shim always means nothing was forwarded: the line was full
// (MaxQueue), the bodies in memory too many (MaxBuffered), the wait too long
// (QueueTimeout), or the shim is shutting down.
// A 502 means the backend could not be reached.
package shim
