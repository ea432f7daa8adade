package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// maxUploadNames bounds the input values of one prompt looked up as
// uploads.
const maxUploadNames = 64

// beforePrompt readies the machine at url for a queued prompt (its body)
// just before its dispatch: it sends the machine the uploads the prompt
// names that the machine has not received, and, when a websocket of the
// prompt's client is open on a gateway, opens the relay of the prompt's
// events. The returned stop ends the relay of a dispatch that came to
// nothing (the relay of a dispatched prompt ends with the prompt); it is a
// no-op when there is none. A Redis or machine failure here is logged and
// the dispatch goes on: the machine then refuses a prompt whose file it
// lacks, and that ends as a failed prompt.
func (g *Gateway) beforePrompt(ctx context.Context, prompt string, body []byte, url string) (stop func()) {
	stop = func() {}
	if prompt == "" {
		return stop
	}
	client, names := promptNeeds(body)
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
	listening, missing, err := g.cfg.Store.DispatchNeeds(nctx, client, url, names)
	cancel()
	if err != nil {
		g.cfg.Logger.Warn("cannot read what a prompt needs on its machine", "prompt_id", prompt, "err", err)
		return stop
	}
	for _, key := range missing {
		g.pushUpload(ctx, url, key, true)
	}
	if !listening {
		return stop
	}
	rl := g.openRelay(prompt, client, url)
	if rl == nil {
		return stop
	}
	g.wg.Go(rl.run)
	return rl.stop
}

// promptNeeds reads a POST /prompt body's client_id and the upload keys
// that its nodes' string inputs may name (at most maxUploadNames).
func promptNeeds(body []byte) (client string, names []string) {
	var doc struct {
		ClientID string `json:"client_id"`
		Prompt   map[string]struct {
			Inputs map[string]any `json:"inputs"`
		} `json:"prompt"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return "", nil
	}
	seen := map[string]bool{}
	for _, n := range doc.Prompt {
		for _, v := range n.Inputs {
			s, ok := v.(string)
			if !ok || s == "" || len(s) > 512 || strings.ContainsAny(s, "\n\x00") || len(names) >= maxUploadNames {
				continue
			}
			if key, ok := cluster.UploadKey(s); ok && !seen[key] {
				seen[key] = true
				names = append(names, key)
			}
		}
	}
	return doc.ClientID, names
}

// uploadPushTimeout bounds sending one kept upload to a machine.
const uploadPushTimeout = 30 * time.Second

// pushUpload sends the machine at url the upload kept under key (first the
// upload it needs, a mask's original, when needs is set) and records that
// the machine has it. Failures are logged.
func (g *Gateway) pushUpload(ctx context.Context, url, key string, needs bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), uploadPushTimeout)
	defer cancel()
	u, digest, found, err := g.cfg.Store.LoadUpload(ctx, key)
	if err != nil || !found {
		if err != nil {
			g.cfg.Logger.Warn("cannot read a kept upload in Redis", "file", key, "err", err)
		}
		return
	}
	if needs && u.Needs != "" && u.Needs != key {
		g.pushUpload(ctx, url, u.Needs, false)
	}
	res := g.sendUpload(ctx, url, u)
	if res.code != 200 {
		g.cfg.Logger.Warn("cannot send a kept upload to the machine", "file", key, "url", url, "status", res.code, "err", res.err)
		return
	}
	if err := g.cfg.Store.UploadHad(ctx, url, key, digest); err != nil {
		g.cfg.Logger.Warn("cannot record a machine's upload in Redis", "file", key, "err", err)
	}
	g.cfg.Logger.Info("sent a kept upload to the machine before its prompt", "file", key, "url", url)
}
