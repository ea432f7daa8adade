package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// machineReadTimeout bounds a read of one machine's /queue or /history.
const machineReadTimeout = 2 * time.Second

// serveComfy answers the ComfyUI routes that the cluster's state in Redis
// changes: /queue, GET /prompt, /history, /history/{id}, /view, /ws and
// the uploads. It reports false for the rest.
func (g *Gateway) serveComfy(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	if p, ok := cutAPI(path); ok {
		path = p
	}
	switch {
	case r.Method == http.MethodGet && path == "/queue":
		g.getQueue(w, r)
	case r.Method == http.MethodGet && path == "/ws":
		g.serveWebsocket(w, r)
	case r.Method == http.MethodGet && path == "/prompt":
		g.getPrompt(w, r)
	case r.Method == http.MethodPost && path == "/queue":
		g.postQueue(w, r)
	case r.Method == http.MethodGet && path == "/history":
		g.getHistory(w, r)
	case r.Method == http.MethodPost && path == "/history":
		g.postHistory(w, r)
	case r.Method == http.MethodGet && path == "/view":
		g.view(w, r)
	case r.Method == http.MethodPost && (path == "/upload/image" || path == "/upload/mask"):
		g.serveUpload(w, r, path)
	default:
		id, ok := historyPrompt(r.Method, path)
		if !ok {
			return false
		}
		g.historyItem(w, r, id)
	}
	return true
}

func cutAPI(path string) (string, bool) {
	if len(path) > 4 && path[:5] == "/api/" {
		return path[4:], true
	}
	return path, false
}

// queueTuple is a prompt as ComfyUI lists it in /queue: [number,
// prompt_id, prompt, extra_data, outputs_to_execute].
func queueTuple(p cluster.Prompt) []any {
	var body struct {
		Prompt    json.RawMessage `json:"prompt"`
		ClientID  string          `json:"client_id"`
		ExtraData map[string]any  `json:"extra_data"`
	}
	_ = json.Unmarshal(p.Body, &body)
	extra := body.ExtraData
	if extra == nil {
		extra = map[string]any{}
	}
	if body.ClientID != "" {
		extra["client_id"] = body.ClientID
	}
	prompt := body.Prompt
	if len(prompt) == 0 {
		prompt = json.RawMessage("{}")
	}
	return []any{p.Number, p.ID, prompt, extra, []string{}}
}

// clusterQueue is ComfyUI's /queue for the whole cluster.
type clusterQueue struct {
	Running []json.RawMessage `json:"queue_running"`
	Pending []json.RawMessage `json:"queue_pending"`
}

// collectQueue gathers what runs on every live machine, and the cluster's
// line (pending, oldest first) before each machine's own pending prompts
// (its local clients').
func (g *Gateway) collectQueue(ctx context.Context) (clusterQueue, error) {
	out := clusterQueue{Running: []json.RawMessage{}, Pending: []json.RawMessage{}}
	pending, err := g.cfg.Store.PendingPrompts(ctx)
	if err != nil {
		return out, err
	}
	urls, err := g.cfg.Store.LiveURLs(ctx, g.cfg.Profile)
	if err != nil {
		return out, err
	}
	seen := map[string]bool{}
	for _, p := range pending {
		b, _ := json.Marshal(queueTuple(p))
		out.Pending = append(out.Pending, b)
		seen[p.ID] = true
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var local []json.RawMessage
	for _, u := range urls {
		wg.Go(func() {
			var q clusterQueue
			if err := g.getJSON(ctx, u+"/queue", &q); err != nil {
				return // a machine that cannot answer shows nothing running
			}
			mu.Lock()
			out.Running = append(out.Running, q.Running...)
			local = append(local, q.Pending...)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, t := range local {
		if !seen[tupleID(t)] {
			out.Pending = append(out.Pending, t)
		}
	}
	return out, nil
}

// getQueue answers GET /queue for the whole cluster.
func (g *Gateway) getQueue(w http.ResponseWriter, r *http.Request) {
	q, err := g.collectQueue(r.Context())
	if err != nil {
		g.redisDown(w, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// getPrompt answers GET /prompt: the cluster's queue_remaining (pending
// and running), as ComfyUI counts its own.
func (g *Gateway) getPrompt(w http.ResponseWriter, r *http.Request) {
	q, err := g.collectQueue(r.Context())
	if err != nil {
		g.redisDown(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"exec_info": map[string]any{"queue_remaining": len(q.Running) + len(q.Pending)}})
}

// tupleID returns the prompt_id of a /queue tuple.
func tupleID(t json.RawMessage) string {
	var v []json.RawMessage
	var id string
	if json.Unmarshal(t, &v) == nil && len(v) > 1 {
		_ = json.Unmarshal(v[1], &id)
	}
	return id
}

// postQueue answers POST /queue: {"delete": [ids]} and {"clear": true} act
// on the cluster's line, pending prompts only, as ComfyUI's do.
func (g *Gateway) postQueue(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "gpulock: POST /queue wants {\"delete\": [ids]} or {\"clear\": true}")
		return
	}
	ids := req.Delete
	if req.Clear {
		pending, err := g.cfg.Store.PendingPrompts(r.Context())
		if err != nil {
			g.redisDown(w, err)
			return
		}
		for _, p := range pending {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		ok, err := g.cfg.Store.DeletePending(r.Context(), id)
		if err != nil {
			g.redisDown(w, err)
			return
		}
		if ok {
			g.cfg.Logger.Info("prompt deleted from the line", "prompt_id", id)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// historyItem answers GET /history/{id}: the entry kept in Redis, else the
// machine's answer for a prompt dispatched to it; {} (as ComfyUI answers
// for a queued prompt) while it waits or runs.
func (g *Gateway) historyItem(w http.ResponseWriter, r *http.Request, id string) {
	p, found, err := g.cfg.Store.LookupPrompt(r.Context(), id)
	if err != nil {
		g.redisDown(w, err)
		return
	}
	if !found {
		url, err := g.cfg.Store.PromptURL(r.Context(), id)
		if err == nil && url != "" {
			g.pass(w, r, url)
			return
		}
		g.passAny(w, r) // a prompt a machine's local client sent, perhaps
		return
	}
	if p.State == cluster.PromptRunning && p.URL != "" {
		// Its follower may be gone with its gateway: ask the machine.
		if entry, ok := g.machineHistory(r.Context(), p.URL, id); ok {
			_ = g.settleDone(context.WithoutCancel(r.Context()), id, p.URL, entry)
			p.History = entry
		}
	}
	out := map[string]json.RawMessage{}
	if len(p.History) > 0 {
		out[id] = p.History
	}
	writeJSON(w, http.StatusOK, out)
}

// view answers GET /view from the machine that made the file; a file the
// cluster does not know goes to any live machine.
func (g *Gateway) view(w http.ResponseWriter, r *http.Request) {
	if g.viewMachine(w, r) {
		return
	}
	q := r.URL.Query()
	if q.Get("type") == "input" {
		g.viewInput(w, r) // uploads are on every machine (comfyupload.go)
		return
	}
	url, err := g.cfg.Store.FileURL(r.Context(), cluster.FileKey(q.Get("type"), q.Get("subfolder"), q.Get("filename")))
	if err != nil {
		g.redisDown(w, err)
		return
	}
	if url != "" {
		g.pass(w, r, url)
		return
	}
	g.passAny(w, r)
}

// getJSON reads url's JSON into v, bounded by machineReadTimeout.
func (g *Gateway) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, machineReadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode}
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

type statusError struct{ code int }

func (e *statusError) Error() string {
	return "gateway: the machine answered " + http.StatusText(e.code)
}

// redisDown answers a request that needed Redis when it could not be read.
func (g *Gateway) redisDown(w http.ResponseWriter, err error) {
	writeUnavailable(w, g.cfg.RetryAfter, "cluster_unreachable", "gpulock: cannot reach the cluster's Redis ("+err.Error()+"); try again later")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
