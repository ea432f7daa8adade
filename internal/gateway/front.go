package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/cluster"
)

// HeaderFront says what became of a prompt's "front": true:
// "honoured" or "ignored; <reason>".
const HeaderFront = "X-GPULock-Front"

// front decides a ComfyUI prompt's "front": true. It is honoured only for
// a job whose level is above normal by the priority rules (the gateway's
// --priority, or X-GPULock-Priority with --priority-header): the job then
// goes ahead of every job waiting in line, the front of its level, the
// highest. Otherwise it is ignored, so that a client cannot pass the
// others by asking. Either way w's HeaderFront says so; a body without
// front says nothing.
func (g *Gateway) front(w http.ResponseWriter, body []byte, turn *cluster.Turn) {
	var req struct {
		Front bool `json:"front"`
	}
	if g.cfg.Profile != "comfyui" || json.Unmarshal(body, &req) != nil || !req.Front {
		return
	}
	if turn.Priority <= gpulock.PriorityNormal {
		w.Header().Set(HeaderFront, "ignored; front needs a priority above normal (the gateway's --priority high, or X-GPULock-Priority: high with --priority-header), this prompt's is "+turn.Priority.String())
		return
	}
	turn.Front = true
	w.Header().Set(HeaderFront, "honoured")
}
