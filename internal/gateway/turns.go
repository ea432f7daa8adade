package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/gpulock/gpulock/internal/cluster"
)

// turnOf returns where a GPU request's job goes in the cluster's line:
// its client and level by the shim's rule (shim.Turns.TurnOf), with the
// ComfyUI client_id of a prompt body as the client.
func (g *Gateway) turnOf(r *http.Request, body []byte) cluster.Turn {
	var client string
	if g.cfg.Profile == "comfyui" {
		var p struct {
			ClientID string `json:"client_id"`
		}
		if json.Unmarshal(body, &p) == nil {
			client = p.ClientID
		}
	}
	t := g.cfg.Turns.TurnOf(r, client)
	return cluster.Turn{Client: t.Client, Priority: t.Priority, ArrivalOrder: g.cfg.Turns.ArrivalOrder, Aging: g.cfg.Aging,
		Model: g.modelOf(body)}
}
