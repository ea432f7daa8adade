package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// followEvery is how often a dispatched prompt's machine is asked whether
// the prompt ended.
const followEvery = 100 * time.Millisecond

// capture is the ResponseWriter of a queued prompt's dispatch: it keeps
// the status and the start of the body, to tell how the dispatch went.
type capture struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func newCapture() *capture { return &capture{h: http.Header{}} }

func (c *capture) Header() http.Header { return c.h }
func (c *capture) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *capture) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	if room := 64<<10 - c.body.Len(); room > 0 {
		c.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

// settlePrompt ends a queued prompt after its dispatch: a machine that
// took it is followed until the prompt ends; a refusal (the machine's 400,
// a machine that failed, a wait that ran out) ends it as a failed prompt in
// /history. A prompt deleted from the line, or one left in line as the
// gateway closes, is left as it is.
func (g *Gateway) settlePrompt(id string, c *capture) {
	ctx := context.WithoutCancel(g.ctx)
	switch {
	case c.code == 0:
		return
	case c.code < 300:
		p, found, err := g.lookupDispatched(id)
		if url := c.h.Get(headerMachineURL); found && url != "" {
			// The machine is the one the dispatch went to: its record may
			// not have reached Redis yet, or an earlier try's record (one
			// that Redis did not answer, written again later) may name the
			// GPU that refused it.
			p.URL, p.GPU = url, c.h.Get(HeaderGPU)
		}
		if err != nil || !found || p.URL == "" {
			g.cfg.Logger.Warn("cannot follow a dispatched prompt", "prompt_id", id, "err", err)
			return
		}
		g.follow(id, p)
	default:
		msg := c.body.String()
		var e struct {
			Error      json.RawMessage `json:"error"`
			NodeErrors json.RawMessage `json:"node_errors"`
		}
		if json.Unmarshal(c.body.Bytes(), &e) == nil && len(e.Error) > 0 {
			msg = string(e.Error)
			if len(e.NodeErrors) > 2 { // more than {} or []
				msg += "; node_errors: " + string(e.NodeErrors)
			}
		}
		gpu := c.h.Get(HeaderGPU)
		_ = g.settleFailed(ctx, id, "", "gpulock: the prompt was not run (status "+http.StatusText(c.code)+" on "+orNone(gpu)+"): "+msg)
	}
}

// headerMachineURL carries, on a prompt's capture only (never to a
// client), the shim URL its dispatch went to.
const headerMachineURL = "X-Gpulock-Internal-Machine-Url"

// lookupDispatched reads a dispatched prompt's record to follow it. While
// Redis does not answer it tries again (the prompt runs on its machine all
// the same, and its end must reach /history), until the gateway closes.
func (g *Gateway) lookupDispatched(id string) (p cluster.Prompt, found bool, err error) {
	err = untilAnswered(g.ctx, func() error {
		ctx, cancel := context.WithTimeout(g.ctx, redisBound)
		defer cancel()
		p, found, err = g.cfg.Store.LookupPrompt(ctx, id)
		return err
	})
	return p, found, err
}

func orNone(gpu string) string {
	if gpu == "" {
		return "no machine"
	}
	return gpu
}

// follow asks the prompt's machine for its history entry every followEvery
// until it ends, and keeps the entry in Redis. A machine that cannot be
// reached and has left the cluster (its lease ran out) ends the prompt as
// failed, naming the machine. It stops when the gateway closes.
func (g *Gateway) follow(id string, p cluster.Prompt) {
	t := time.NewTicker(followEvery)
	defer t.Stop()
	var downSince time.Time
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		var doc map[string]json.RawMessage
		err := g.getJSON(g.ctx, p.URL+"/history/"+id, &doc)
		if err == nil {
			downSince = time.Time{}
			if entry, ok := doc[id]; ok {
				g.keepDone(id, p.URL, entry)
				_ = g.cfg.Store.ClientPromptEnded(g.ctx, promptClient(p.Body), id)
				g.finish(g.ctx, p.Job) // adopted: its dispatcher, gone, did not
				if !p.Since.IsZero() {
					_ = g.cfg.Store.RecordJobTime(g.ctx, g.cfg.Profile, time.Since(p.Since))
				}
				return
			}
			continue
		}
		if g.ctx.Err() != nil {
			return
		}
		if downSince.IsZero() {
			downSince = time.Now()
		}
		if time.Since(downSince) < g.cfg.Lease {
			continue
		}
		urls, lerr := g.cfg.Store.LiveURLs(g.ctx, g.cfg.Profile)
		if lerr == nil && !slices.Contains(urls, p.URL) {
			defer g.finish(g.ctx, p.Job)
			_ = g.settleFailed(g.ctx, id, p.URL, "gpulock: the machine "+p.GPU+" ("+p.URL+") failed while running the prompt ("+err.Error()+"); it was not run again, queue it again if you want")
			return
		}
	}
}

// machineHistory asks the machine at url for prompt id's history entry.
func (g *Gateway) machineHistory(ctx context.Context, url, id string) (json.RawMessage, bool) {
	var doc map[string]json.RawMessage
	if err := g.getJSON(ctx, url+"/history/"+id, &doc); err != nil {
		return nil, false
	}
	e, ok := doc[id]
	return e, ok
}

// settleDone keeps a finished prompt's entry and where its outputs are.
func (g *Gateway) settleDone(ctx context.Context, id, url string, entry json.RawMessage) error {
	var e struct {
		Outputs map[string]struct {
			Images []struct {
				Filename  string `json:"filename"`
				Subfolder string `json:"subfolder"`
				Type      string `json:"type"`
			} `json:"images"`
		} `json:"outputs"`
	}
	_ = json.Unmarshal(entry, &e)
	var files []string
	for _, out := range e.Outputs {
		for _, img := range out.Images {
			files = append(files, cluster.FileKey(img.Type, img.Subfolder, img.Filename))
		}
	}
	if url != "" {
		// The names handed out carry the machine (comfyoutputs.go); the
		// machine's own names stay mapped to it, for clients that drop the
		// subfolder (the last machine to write a name wins).
		entry = rewriteEntry(entry, url)
	}
	err := g.cfg.Store.PromptFinished(ctx, id, entry, url, files)
	if err != nil {
		g.cfg.Logger.Warn("cannot keep a prompt's history in Redis", "prompt_id", id, "err", err)
	}
	return err
}

// keepDone keeps a finished prompt's entry in Redis, retrying every
// followEvery while Redis does not answer (the prompt ended while it was
// down), until the gateway closes.
func (g *Gateway) keepDone(id, url string, entry json.RawMessage) {
	_ = untilAnswered(g.ctx, func() error { return g.settleDone(g.ctx, id, url, entry) })
}

// settleFailed keeps a failed prompt's entry, as ComfyUI writes one for a
// prompt whose execution failed.
func (g *Gateway) settleFailed(ctx context.Context, id, url, message string) error {
	g.cfg.Logger.Warn("prompt failed", "prompt_id", id, "err", message)
	tell := g.tellFailed(ctx, id, message) // while Redis keeps the prompt's body
	entry, _ := json.Marshal(map[string]any{
		"prompt":  []any{},
		"outputs": map[string]any{},
		"status": map[string]any{
			"status_str": "error",
			"completed":  false,
			"messages": [][2]any{{"execution_error", map[string]any{
				"prompt_id":         id,
				"node_id":           "",
				"node_type":         "",
				"exception_type":    "gpulock.DispatchError",
				"exception_message": message,
				"traceback":         []string{},
				"timestamp":         time.Now().UnixMilli(),
			}}},
		},
		"meta": map[string]any{},
	})
	if err := g.settleDone(ctx, id, url, entry); err != nil {
		g.keepDone(id, url, entry) // Redis is down: until it is back
	}
	tell() // after the entry, as ComfyUI writes history before the last frames
	return nil
}

// promptBack puts a queued prompt whose dispatch came to nothing back in
// the pending list ("" : not a prompt).
func (g *Gateway) promptBack(ctx context.Context, prompt string) {
	if prompt != "" {
		_ = g.cfg.Store.PromptWaitingAgain(context.WithoutCancel(ctx), prompt)
	}
}

// deleted reports whether job's prompt was deleted from the line (POST
// /queue on any gateway): then it must not be put in line again.
func (g *Gateway) deleted(ctx context.Context, job string) bool {
	ok, err := g.cfg.Store.JobDeleted(context.WithoutCancel(ctx), job)
	return err == nil && ok
}
