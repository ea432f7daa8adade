package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// PathOptions is A1111's options route; a POST through an a1111 gateway
// sets the options of the whole cluster.
const PathOptions = "/sdapi/v1/options"

// maxOptionsBody bounds a POST /sdapi/v1/options body.
const maxOptionsBody = 1 << 20

// modelOptionKeys are the A1111 options whose change loads weights onto
// the GPU (the shim's rule: internal/shim's modelKeys).
var modelOptionKeys = []string{"sd_model_checkpoint", "sd_vae", "sd_unet"}

// optionsResult is what one machine answered to the cluster's options.
type optionsResult struct {
	GPU     string `json:"gpu"`
	Status  int    `json:"status"`
	Message string `json:"message,omitempty"`
}

// isOptions reports whether r sets A1111 options.
func (g *Gateway) isOptions(r *http.Request) bool {
	return g.cfg.Profile == "a1111" && r.Method == http.MethodPost && r.URL.Path == PathOptions
}

// serveOptions sets A1111 options on every live machine of the cluster.
// A model change is a GPU job per machine, pinned to it, in the cluster's
// line at the client's turn; other options go to every machine at once.
// The options are kept in Redis first, so that a machine that joins later
// applies them before its first job (cluster.Member). The answer is
// A1111's null when every machine applied them, else 502 naming the
// machines that failed (when none applied them, Redis keeps the options it
// had before).
func (g *Gateway) serveOptions(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOptionsBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("gpulock: an options body is at most %d bytes", maxOptionsBody))
		return
	}
	var opts map[string]json.RawMessage
	if err := json.Unmarshal(body, &opts); err != nil || opts == nil {
		writeError(w, http.StatusUnprocessableEntity, "bad_options", "gpulock: the options must be one JSON object, such as {\"sd_model_checkpoint\": \"...\"}")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), redisBound)
	gpus, err := g.cfg.Store.LiveGPUs(ctx, g.cfg.Profile)
	var before []byte
	if err == nil {
		before, err = g.cfg.Store.WantedOptions(ctx)
	}
	if err == nil {
		err = g.cfg.Store.SetWantedOptions(ctx, opts)
	}
	cancel()
	if err != nil {
		g.redisDown(w, err)
		return
	}
	if len(gpus) == 0 {
		g.refuse(w, cluster.ErrNoMachine)
		return
	}
	model := changesModel(opts)
	results := make([]optionsResult, len(gpus))
	var wg sync.WaitGroup
	for i, gpu := range gpus {
		wg.Go(func() {
			if model {
				results[i] = g.optionsJob(r, body, gpu.ID)
			} else {
				results[i] = g.optionsPass(r, body, gpu)
			}
		})
	}
	wg.Wait()
	var failed, applied []string
	for _, res := range results {
		if res.Status/100 == 2 {
			applied = append(applied, res.GPU)
		} else {
			failed = append(failed, fmt.Sprintf("%s (%d: %s)", res.GPU, res.Status, res.Message))
		}
	}
	g.cfg.Logger.Info("cluster options", "options", string(body), "model", model, "applied", len(applied), "failed", len(failed))
	g.recordOptionsModel(r.Context(), opts, applied)
	if len(failed) == 0 {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("null"))
		return
	}
	if len(applied) == 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), redisBound)
		if err := g.cfg.Store.ReplaceWantedOptions(rctx, before); err != nil {
			g.cfg.Logger.Warn("cannot put the cluster's options back after no machine applied the new ones", "err", err)
		}
		cancel()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"type": "options_failed", "source": "gpulock",
		"message": fmt.Sprintf("gpulock: the options were applied on %d of %d machines; failed: %s. Retry, or check the model exists on every machine",
			len(applied), len(gpus), strings.Join(failed, "; ")),
		"results": results,
	}})
}

// changesModel reports whether opts set an option that loads weights.
func changesModel(opts map[string]json.RawMessage) bool {
	for _, k := range modelOptionKeys {
		if _, ok := opts[k]; ok {
			return true
		}
	}
	return false
}

// errMachineLeft means the machine a pinned job waited for left the
// cluster (its lease ran out) before it took the job.
var errMachineLeft = errors.New("gateway: the machine left the cluster before it applied the options")

// optionsJob applies a model change on gpu as a GPU job pinned to it. The
// wait ends when gpu leaves the cluster (nobody else may take the job).
func (g *Gateway) optionsJob(r *http.Request, body []byte, gpu string) optionsResult {
	start := time.Now()
	ctx, gone := context.WithCancelCause(r.Context())
	watched := make(chan struct{})
	go func() { // owned here: ends with ctx, waited below
		defer close(watched)
		g.watchMember(ctx, gpu, gone)
	}()
	defer func() { gone(nil); <-watched }()
	var cancel context.CancelFunc = func() {}
	if g.cfg.QueueTimeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, g.cfg.QueueTimeout, errQueueTimeout)
	}
	defer cancel()
	id := newJobID()
	turn := g.turnOf(r, body)
	turn.Pin = gpu // kept if the job is put in line again
	c := newCapture()
	if untrack, err := g.trackHeld(ctx, id); err != nil { // before the job, as serveJob
		g.forgetLater(id, false)
		g.refuse(c, err)
	} else {
		defer untrack()
		ectx, ecancel := context.WithTimeout(ctx, redisBound)
		m, err := g.cfg.Store.EnqueuePinned(ectx, gpu, id, turn, g.cfg.Reserve)
		ecancel()
		if err != nil {
			if !errors.Is(err, cluster.ErrNoMachine) {
				g.forgetLater(id, false) // Redis may have put it in line all the same
			}
			g.refuse(c, err)
		} else {
			g.runJob(ctx, c, r, body, id, "", turn, m, start)
		}
	}
	if errors.Is(context.Cause(ctx), errMachineLeft) && c.code/100 != 2 {
		return optionsResult{GPU: gpu, Status: http.StatusServiceUnavailable, Message: errMachineLeft.Error()}
	}
	return resultOf(gpu, c)
}

// watchMember ends ctx with errMachineLeft once gpu's registration is
// gone; it returns when ctx ends.
func (g *Gateway) watchMember(ctx context.Context, gpu string, gone context.CancelCauseFunc) {
	t := time.NewTicker(max(g.cfg.Lease/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, redisBound)
		live, err := g.cfg.Store.Registered(rctx, gpu)
		cancel()
		if err == nil && !live {
			gone(errMachineLeft)
			return
		}
	}
}

// optionsPass posts options that load nothing to gpu at once.
func (g *Gateway) optionsPass(r *http.Request, body []byte, gpu cluster.LiveGPU) optionsResult {
	out, err := http.NewRequestWithContext(r.Context(), http.MethodPost, gpu.URL+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return optionsResult{GPU: gpu.ID, Status: http.StatusBadGateway, Message: err.Error()}
	}
	out.Header = r.Header.Clone()
	out.Header.Del("Content-Length")
	resp, err := g.client.Do(out)
	if err != nil {
		return optionsResult{GPU: gpu.ID, Status: http.StatusBadGateway, Message: "unreachable: " + err.Error()}
	}
	defer resp.Body.Close()
	c := newCapture()
	c.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(c, io.LimitReader(resp.Body, 64<<10))
	return resultOf(gpu.ID, c)
}

// resultOf reads one machine's answer; a refusal's message is its error's.
func resultOf(gpu string, c *capture) optionsResult {
	res := optionsResult{GPU: gpu, Status: c.code}
	if res.Status == 0 {
		res.Status = http.StatusGatewayTimeout // the client left before it ran
		res.Message = "not applied: the request ended first"
		return res
	}
	if res.Status/100 == 2 {
		return res
	}
	var e struct {
		Error  json.RawMessage `json:"error"`
		Detail string          `json:"detail"`
		Errors string          `json:"errors"` // A1111's own errors
	}
	raw := bytes.TrimSpace(c.body.Bytes())
	if json.Unmarshal(raw, &e) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal(e.Error, &inner) == nil && inner.Message != "":
			res.Message = inner.Message
		case e.Errors != "":
			res.Message = e.Errors
		case e.Detail != "":
			res.Message = e.Detail
		}
	}
	if res.Message == "" {
		res.Message = string(raw[:min(len(raw), 200)])
	}
	if res.Message == "" {
		res.Message = http.StatusText(res.Status)
	}
	return res
}

// recordOptionsModel records the checkpoint that opts set as the last
// model of every GPU that applied them, for model-aware dispatch.
func (g *Gateway) recordOptionsModel(ctx context.Context, opts map[string]json.RawMessage, applied []string) {
	var ckpt string
	if json.Unmarshal(opts["sd_model_checkpoint"], &ckpt) != nil || ckpt == "" {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
	defer cancel()
	for _, gpu := range applied {
		if err := g.cfg.Store.SetLastModel(rctx, gpu, ckpt); err != nil {
			g.cfg.Logger.Warn("cannot record a GPU's model after the cluster's options", "gpu", gpu, "err", err)
			return
		}
	}
}
