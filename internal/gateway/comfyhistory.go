package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// getHistory answers GET /history[?max_items=N&offset=M] from Redis: the
// prompts that came through the cluster's gateways, in the order they
// ended, as ComfyUI lists its own.
func (g *Gateway) getHistory(w http.ResponseWriter, r *http.Request) {
	max, offset := -1, 0
	if n, err := strconv.Atoi(r.URL.Query().Get("max_items")); err == nil && n >= 0 {
		max = n
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("offset")); err == nil && n > 0 {
		offset = n
	}
	list, err := g.cfg.Store.Histories(r.Context(), max, offset)
	if err != nil {
		g.redisDown(w, err)
		return
	}
	var b bytes.Buffer // an object in the order the prompts ended
	b.WriteByte('{')
	for i, h := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(h.ID)
		b.Write(k)
		b.WriteByte(':')
		b.Write(h.Entry)
	}
	b.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

// postHistory answers POST /history: {"delete": [ids]} and {"clear": true}
// forget entries kept in Redis.
func (g *Gateway) postHistory(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "gpulock: POST /history wants {\"delete\": [ids]} or {\"clear\": true}")
		return
	}
	if err := g.cfg.Store.DeleteHistory(r.Context(), req.Delete, req.Clear); err != nil {
		g.redisDown(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
