package gateway

import (
	"errors"
	"io"
	"net/http"
)

// free answers ComfyUI's POST /free ({"unload_models": true,
// "free_memory": true}): with AllowFree the body goes to every live
// machine (each unloads after the prompt it runs, as ComfyUI does), else
// it is refused 403, since one caller would unload the models of every
// machine of the cluster.
func (g *Gateway) free(w http.ResponseWriter, r *http.Request) {
	if !g.cfg.AllowFree {
		writeError(w, http.StatusForbidden, "free_not_allowed",
			"gpulock: POST /free through the gateway would unload the models of every machine of the cluster; start the gateway with --allow-free (GPULOCK_ALLOW_FREE=true) to allow it, or call /free on one machine's shim")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "gpulock: cannot read the POST /free body: "+err.Error())
		return
	}
	if err := g.postAll(r.Context(), "/free", body); err != nil {
		var re *redisError
		if errors.As(err, &re) {
			g.redisDown(w, re.err)
			return
		}
		writeError(w, http.StatusBadGateway, "free_failed", err.Error())
		return
	}
	g.cfg.Logger.Info("POST /free sent to every machine (--allow-free)")
	w.WriteHeader(http.StatusOK)
}
