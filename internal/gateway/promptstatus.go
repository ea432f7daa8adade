package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// PathPrompt is the prefix of a prompt's status: GET /gpulock/prompt/{id}.
const PathPrompt = "/gpulock/prompt/"

// PromptStatus is the JSON of GET /gpulock/prompt/{id}: where a ComfyUI
// prompt sent through a gateway stands, so that a client can tell a prompt
// that waits from one the cluster does not know.
type PromptStatus struct {
	PromptID string `json:"prompt_id"`
	// State is "waiting", "running", "done" or "unknown".
	State string `json:"state"`
	// Number is the prompt's number, as POST /prompt answered it.
	Number int64 `json:"number,omitempty"`
	// Position is its place in the cluster's line, 1 for the next to go;
	// 0 while it is matched with a GPU and on its way there (waiting).
	Position *int64 `json:"position,omitempty"`
	// EstimatedStartSeconds is the recent mean job time x position / live
	// GPUs (waiting; absent until a job time is known).
	EstimatedStartSeconds *float64 `json:"estimated_start_seconds,omitempty"`
	// Node and GPU say where it runs or ran; Since is when it was
	// dispatched (running, done).
	Node  string     `json:"node,omitempty"`
	GPU   *int       `json:"gpu,omitempty"`
	Since *time.Time `json:"since,omitempty"`
	// StatusStr is the history entry's status_str (done): "success" or
	// "error".
	StatusStr string `json:"status_str,omitempty"`
}

// promptStatus answers GET /gpulock/prompt/{id}; an unknown prompt gets 404
// with state "unknown".
func (g *Gateway) promptStatus(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "gpulock: "+PathPrompt+"{id} answers GET only")
		return
	}
	st, err := g.readPromptStatus(r.Context(), id)
	if err != nil {
		g.redisDown(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	code := http.StatusOK
	if st.State == "unknown" {
		code = http.StatusNotFound
	}
	writeJSON(w, code, st)
}

// readPromptStatus reads where prompt id stands.
func (g *Gateway) readPromptStatus(ctx context.Context, id string) (PromptStatus, error) {
	st := PromptStatus{PromptID: id, State: "unknown"}
	if id == "" || strings.Contains(id, "/") {
		return st, nil
	}
	p, found, err := g.cfg.Store.LookupPrompt(ctx, id)
	if err != nil || !found {
		return st, err
	}
	st.State, st.Number = p.State, p.Number
	switch p.State {
	case cluster.PromptWaiting:
		place, _, err := g.cfg.Store.Position(ctx, p.Job)
		if err != nil {
			return st, err
		}
		pos := int64(place) // 0 when matched: on its way to its GPU
		st.Position = &pos
		mean, known, err := g.cfg.Store.MeanJobTime(ctx, g.cfg.Profile)
		if err != nil {
			return st, err
		}
		gpus, err := g.cfg.Store.LiveGPUs(ctx, g.cfg.Profile)
		if err != nil {
			return st, err
		}
		if known && len(gpus) > 0 {
			est := mean.Seconds() * float64(pos) / float64(len(gpus))
			st.EstimatedStartSeconds = &est
		}
	case cluster.PromptRunning:
		st.Node, st.GPU = nodeGPU(p.GPU)
		if !p.Since.IsZero() {
			st.Since = &p.Since
		}
	case cluster.PromptDone:
		st.Node, st.GPU = nodeGPU(p.GPU)
		if !p.Since.IsZero() {
			st.Since = &p.Since
		}
		var e struct {
			Status struct {
				StatusStr string `json:"status_str"`
			} `json:"status"`
		}
		_ = json.Unmarshal(p.History, &e)
		st.StatusStr = e.Status.StatusStr
	}
	return st, nil
}

// nodeGPU splits a GPU member id, "node/gpu/profile" (the node may hold
// slashes).
func nodeGPU(member string) (string, *int) {
	rest, _, ok := cutLastSlash(member)
	if !ok {
		return "", nil
	}
	node, num, ok := cutLastSlash(rest)
	if !ok {
		return "", nil
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return node, nil
	}
	return node, &n
}

func cutLastSlash(s string) (string, string, bool) {
	i := strings.LastIndex(s, "/")
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
