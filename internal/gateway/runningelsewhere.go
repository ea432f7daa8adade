package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/gpulock/gpulock/internal/cluster"
)

// followRunning takes up a prompt of this gateway's whose job another
// dispatch started (err is errRunElsewhere): a dispatch of the gateway it
// was adopted from, which reached the shim as this one was put in line
// again. The prompt runs on that GPU and nobody else answers for it (its
// owner is this gateway), so w, the prompt's capture, records the GPU for
// settlePrompt to follow it there. It reports false, doing nothing, for a
// held request, another error, or a prompt another gateway answers for.
func (g *Gateway) followRunning(ctx context.Context, w http.ResponseWriter, job, prompt string, err error) bool {
	if prompt == "" || !errors.Is(err, errRunElsewhere) {
		return false
	}
	var (
		m           cluster.Match
		p           cluster.Prompt
		jfound, pok bool
	)
	rerr := untilAnswered(g.ctx, func() (err error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
		defer cancel()
		if m, jfound, err = g.cfg.Store.Job(rctx, job); err != nil {
			return err
		}
		p, pok, err = g.cfg.Store.LookupPrompt(rctx, prompt)
		return err
	})
	if rerr != nil || !jfound || !pok || m.State != cluster.StateRunning || m.URL == "" ||
		p.Owner != g.id || p.State == cluster.PromptDone {
		return false
	}
	_ = untilAnswered(g.ctx, func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
		defer cancel()
		return g.cfg.Store.PromptDispatched(rctx, prompt, m.GPU, m.URL)
	})
	g.cfg.Logger.Warn("a prompt of this gateway's runs from another dispatch (its adopted gateway's); following it there",
		"prompt_id", prompt, "job", job, "gpu", m.GPU)
	w.Header().Set(headerMachineURL, m.URL)
	w.Header().Set(HeaderGPU, m.GPU)
	w.WriteHeader(http.StatusOK)
	return true
}
