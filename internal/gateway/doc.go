// Package gateway is the HTTP front of a gpulock cluster for one profile
// (comfyui or a1111): clients talk to it instead of one machine's shim.
//
// A GPU request becomes a job in the cluster's line in Redis
// (internal/cluster). The gateway holds the client's request until the job
// is matched with a free GPU, then forwards it to that GPU's shim with
// X-GPULock-Dispatch; the shim takes its lock at once or answers 409, and
// then the job goes back to its place in line. A shim that cannot be
// reached before it took the job puts the job back in line too (and that
// GPU is left out of matches for a lease); a job that started is never run
// twice: if its machine fails, the client gets 502. Other requests go to
// any live machine, ComfyUI's /history/{prompt_id} to the machine that ran
// the prompt.
package gateway
