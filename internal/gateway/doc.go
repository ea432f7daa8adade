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
// any live machine.
//
// ComfyUI's websocket (comfyws.go): the gateway that dispatches a prompt of
// a client with an open socket reads the prompt's events from its machine
// (comfyrelay.go, opened before the dispatch by comfydispatch.go) and
// publishes them on the client's Redis channel; every gateway relays them to
// the client's sockets it holds (comfywshub.go), with its own status
// frames. Output names carry their machine (comfyoutputs.go); uploads go to
// every machine and are kept in Redis for the ones that join later
// (comfyupload.go).
//
// ComfyUI prompts are kept in Redis (internal/cluster's prompts.go): the
// gateway answers /queue, /history and /history/{id} from there (plus what
// runs on the machines), sends /view to the machine that made the file, and
// follows each dispatched prompt to its history entry. Each gateway holds a
// lease; the prompts of one that is gone are adopted by another, and its
// held A1111 requests leave the line.
//
// Beside the line (extra.go): POST /interrupt stops a prompt where it runs
// or ends it in line, or the running prompts of one client (interrupt.go);
// POST /free reaches every machine only with AllowFree (free.go); the
// routes that store state go to one machine in a stable order (sticky.go);
// GET /gpulock/prompt/{id} says where a prompt stands (promptstatus.go).
// "front": true is honoured only above normal priority (front.go), and a
// job's model steers it to a free GPU that has it loaded (model.go).
package gateway
