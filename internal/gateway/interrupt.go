package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// interruptRequest is the body of ComfyUI's POST /interrupt; the gateway
// also takes the client from it.
type interruptRequest struct {
	PromptID string `json:"prompt_id"`
	ClientID string `json:"client_id"`
}

// interrupt answers ComfyUI's POST /interrupt for the cluster:
//   - {"prompt_id": X} stops X on the machine that runs it, or takes it out
//     of the line if it still waits (its history then shows it
//     interrupted); a prompt that ended or is unknown is left, as ComfyUI
//     does, with 200;
//   - no prompt_id stops the running prompts of the client that ?clientId=
//     (or client_id in the body) names;
//   - neither is refused 400, unless AllowGlobalInterrupt: then every
//     machine is asked to stop what it runs.
func (g *Gateway) interrupt(w http.ResponseWriter, r *http.Request) {
	var req interruptRequest
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = json.Unmarshal(body, &req) // ComfyUI treats a bad body as an empty one
	client := r.URL.Query().Get("clientId")
	if client == "" {
		client = req.ClientID
	}
	var err error
	switch {
	case req.PromptID != "":
		err = g.interruptPrompt(r.Context(), req.PromptID)
	case client != "":
		err = g.interruptClient(r.Context(), client)
	case g.cfg.AllowGlobalInterrupt:
		err = g.interruptAll(r.Context())
	default:
		writeError(w, http.StatusBadRequest, "interrupt_needs_target",
			"gpulock: POST /interrupt through the gateway needs {\"prompt_id\": ID} or ?clientId=ID: it would stop every machine of the cluster (start the gateway with --allow-global-interrupt to allow that)")
		return
	}
	if err != nil {
		var re *redisError
		if errors.As(err, &re) {
			g.redisDown(w, re.err)
			return
		}
		writeError(w, http.StatusBadGateway, "interrupt_failed", err.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
}

// redisError marks an error of Redis (503) from one of a machine (502).
type redisError struct{ err error }

func (e *redisError) Error() string { return e.err.Error() }
func (e *redisError) Unwrap() error { return e.err }

// interruptPrompt stops prompt id where it runs, or ends it in line.
func (g *Gateway) interruptPrompt(ctx context.Context, id string) error {
	p, found, err := g.cfg.Store.LookupPrompt(ctx, id)
	if err != nil {
		return &redisError{err}
	}
	if !found {
		// Perhaps a local client's prompt on some machine: ask them all
		// to stop that prompt only (a machine not running it ignores it).
		return g.postAll(ctx, "/interrupt", mustJSON(map[string]string{"prompt_id": id}))
	}
	switch p.State {
	case cluster.PromptWaiting:
		stopped, err := g.cfg.Store.StopPending(ctx, id)
		if err != nil {
			return &redisError{err}
		}
		if stopped {
			g.cfg.Logger.Info("prompt interrupted in line", "prompt_id", id)
			if err := g.settleInterrupted(context.WithoutCancel(ctx), id); err != nil {
				return &redisError{err}
			}
			return nil
		}
		// Matched meanwhile: it runs, or is about to; stop it there.
		if p, _, err = g.cfg.Store.LookupPrompt(ctx, id); err != nil {
			return &redisError{err}
		}
		if p.State != cluster.PromptRunning {
			return nil
		}
		fallthrough
	case cluster.PromptRunning:
		if err := g.postMachine(ctx, p.URL, "/interrupt", mustJSON(map[string]string{"prompt_id": id})); err != nil {
			return err
		}
		g.wg.Go(func() { g.reinterrupt(id, p.URL) })
	}
	return nil // done already
}

// Bounds of reinterrupt.
const (
	reinterruptEvery = 50 * time.Millisecond
	reinterruptFor   = 5 * time.Second
)

// reinterrupt covers the moment between a prompt's dispatch and its start
// on the machine, when the machine's ComfyUI ignores an interrupt for a
// prompt it does not run yet: until the machine's history has the prompt
// (for at most reinterruptFor, or until the gateway closes), it interrupts
// the prompt again whenever the machine's /queue shows it running.
func (g *Gateway) reinterrupt(id, url string) {
	t := time.NewTicker(reinterruptEvery)
	defer t.Stop()
	deadline := time.Now().Add(reinterruptFor)
	body := mustJSON(map[string]string{"prompt_id": id})
	for time.Now().Before(deadline) {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		if _, ended := g.machineHistory(g.ctx, url, id); ended {
			return
		}
		var q clusterQueue
		if err := g.getJSON(g.ctx, url+"/queue", &q); err != nil {
			continue
		}
		for _, r := range q.Running {
			if tupleID(r) == id {
				_ = g.postMachine(g.ctx, url, "/interrupt", body)
			}
		}
	}
}

// interruptClient stops the running prompts of client, read from the
// client's index (cluster.Store.ClientPrompts): its cost is the client's
// prompts, not the line's.
func (g *Gateway) interruptClient(ctx context.Context, client string) error {
	prompts, err := g.cfg.Store.ClientPrompts(ctx, client)
	if err != nil {
		return &redisError{err}
	}
	var errs []error
	for _, p := range prompts {
		if p.State != cluster.PromptRunning {
			continue
		}
		g.cfg.Logger.Info("interrupting a client's prompt", "prompt_id", p.ID, "client_id", client, "gpu", p.GPU)
		if err := g.postMachine(ctx, p.URL, "/interrupt", mustJSON(map[string]string{"prompt_id": p.ID})); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("gateway: could not interrupt every prompt of client %s: %v", client, errs)
	}
	return nil
}

// interruptAll asks every live machine to stop what it runs.
func (g *Gateway) interruptAll(ctx context.Context) error {
	g.cfg.Logger.Warn("cluster-wide interrupt (--allow-global-interrupt)")
	return g.postAll(ctx, "/interrupt", nil)
}

// promptClient returns a prompt body's client_id.
func promptClient(body []byte) string {
	var b struct {
		ClientID string `json:"client_id"`
	}
	_ = json.Unmarshal(body, &b)
	return b.ClientID
}

// settleInterrupted ends a prompt stopped in line, as ComfyUI's history
// shows an interrupted prompt.
func (g *Gateway) settleInterrupted(ctx context.Context, id string) error {
	entry, _ := json.Marshal(map[string]any{
		"prompt":  []any{},
		"outputs": map[string]any{},
		"status": map[string]any{
			"status_str": "error",
			"completed":  false,
			"messages": [][2]any{{"execution_interrupted", map[string]any{
				"prompt_id": id, "node_id": "", "node_type": "", "executed": []string{},
				"timestamp": time.Now().UnixMilli(),
			}}},
		},
		"meta": map[string]any{},
	})
	return g.settleDone(ctx, id, "", entry)
}
