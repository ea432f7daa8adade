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
// just before its dispatch, and returns the body to send: it sends the
// machine the uploads the prompt names that the machine has not received,
// and, when a websocket of the prompt's client is open on a gateway (any
// socket, for a prompt without a client_id), opens the relay of the
// prompt's events. A prompt without a client_id is then sent naming the
// relay's own (relaySID), as ComfyUI would send its events to every socket.
// The returned stop ends the relay of a dispatch that came to nothing (the
// relay of a dispatched prompt ends with the prompt); it is a no-op when
// there is none. A Redis or machine failure here is logged and the
// dispatch goes on: the machine then refuses a prompt whose file it lacks,
// and that ends as a failed prompt.
func (g *Gateway) beforePrompt(ctx context.Context, prompt string, body []byte, url string) (sent []byte, stop func()) {
	stop = func() {}
	if prompt == "" {
		return body, stop
	}
	client, names := promptNeeds(body)
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
	listening, missing, err := g.cfg.Store.PromptNeeds(nctx, prompt, client, url, names)
	cancel()
	if err != nil {
		g.cfg.Logger.Warn("cannot read what a prompt needs on its machine", "prompt_id", prompt, "err", err)
		return body, stop
	}
	for _, key := range missing {
		g.pushUpload(ctx, url, key, true)
	}
	if !listening {
		return body, stop
	}
	rl := g.openRelay(prompt, client, url, false)
	if rl == nil {
		return body, stop
	}
	if client == "" {
		body = withClientID(body, relaySID(prompt, ""))
	}
	g.wg.Go(rl.run)
	return body, rl.stop
}

// relaySID is the websocket id a prompt's relay opens on its machine: the
// prompt's client_id, or for a prompt without one an id of the relay's.
func relaySID(prompt, client string) string {
	if client != "" {
		return client
	}
	return "gpulock-all-" + prompt
}

// withClientID sets a POST /prompt body's client_id (a body it cannot
// read is returned as it is).
func withClientID(body []byte, client string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return body
	}
	m["client_id"], _ = json.Marshal(client)
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
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
