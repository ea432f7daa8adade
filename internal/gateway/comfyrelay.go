package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/gpulock/gpulock/internal/cluster"
)

// Timing of a prompt's relay.
const (
	// relayDialTimeout bounds opening a machine's websocket before a
	// dispatch, up to its first frame.
	relayDialTimeout = 2 * time.Second
	// relayCheckEvery is how often a relay asks Redis whether its prompt
	// ended; relaySettledGrace how long it then waits for the machine's
	// last frames.
	relayCheckEvery   = time.Second
	relaySettledGrace = 2 * time.Second
	// relayClaimTTL is how long a relay's claim on its prompt lasts
	// unless renewed (every relayCheckEvery): a gateway that died leaves
	// the prompt to another relay after it.
	relayClaimTTL = 10 * relayCheckEvery
)

// relay reads one dispatched prompt's events from its machine's websocket
// (opened under the prompt's client_id) and publishes them on the client's
// channel, for whichever gateways hold the client's websockets. One relay
// at a time claims a prompt in Redis (see cluster.Store.ClaimRelay).
type relay struct {
	g                          *Gateway
	prompt, client, url, token string
	late                       bool // opened while the prompt ran already
	conn                       *websocket.Conn
	ctx                        context.Context
	cancel                     context.CancelFunc
	stopOnce                   sync.Once
}

// openRelay claims prompt's relay, opens the machine's websocket for
// client (under relaySID) and reads its first frame (the machine's status,
// sent once it registered the socket), so that no event of the prompt
// dispatched next is missed; late is for a prompt that runs already (a
// client's socket opened after its dispatch). It returns nil when another
// relay holds the prompt, or, after logging, when the socket cannot be
// opened: the prompt then runs unheard.
func (g *Gateway) openRelay(prompt, client, url string, late bool) *relay {
	token := newUUID()
	cctx, ccancel := context.WithTimeout(g.ctx, redisBound)
	claimed, err := g.cfg.Store.ClaimRelay(cctx, prompt, token, relayClaimTTL)
	ccancel()
	if err != nil || !claimed {
		if err != nil {
			g.cfg.Logger.Warn("cannot claim the relay of a prompt's events in Redis; they are not relayed", "prompt_id", prompt, "err", err)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(g.ctx)
	rl := &relay{g: g, prompt: prompt, client: client, url: url, token: token, late: late, ctx: ctx, cancel: cancel}
	dctx, dcancel := context.WithTimeout(ctx, relayDialTimeout)
	defer dcancel()
	c, _, err := websocket.Dial(dctx, wsURL(url, "/ws", relaySID(prompt, client)), nil)
	if err == nil {
		c.SetReadLimit(wsReadLimit)
		_, _, err = c.Read(dctx) // ComfyUI's status frame, with sid
		if err != nil {
			_ = c.CloseNow()
		}
	}
	if err != nil {
		rl.stop()
		g.cfg.Logger.Warn("cannot open the machine's websocket; the prompt's events are not relayed", "prompt_id", prompt, "url", url, "err", err)
		return nil
	}
	rl.conn = c
	return rl
}

// stop ends the relay of a prompt whose dispatch came to nothing, and its
// claim. It is safe to call more than once and after the relay ended.
func (rl *relay) stop() {
	rl.stopOnce.Do(func() {
		rl.cancel()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(rl.ctx), redisBound)
		defer cancel()
		_ = rl.g.cfg.Store.ReleaseRelay(ctx, rl.prompt, rl.token)
	})
}

// run publishes the prompt's frames until its executing frame with node
// null, the machine's socket ending (a machine that died: the prompt's
// follower reports the error to the client), the prompt ending in Redis
// without them (after relaySettledGrace), stop, or the gateway closing.
// Frames of other prompts and the machine's status frames (the gateway
// sends its own) are left out; binary previews go through once the prompt
// started.
func (rl *relay) run() {
	defer rl.stop()
	defer rl.conn.CloseNow()
	st := rl.g.cfg.Store
	bg := context.WithoutCancel(rl.ctx)
	if rl.client != "" {
		_ = st.SetRunningNode(bg, rl.client, rl.prompt, "")
		defer func() { _ = st.ClearRunning(bg, rl.client, rl.prompt) }()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(rl.watchSettled)
	started := false
	warned := false
	for {
		typ, b, err := rl.conn.Read(rl.ctx)
		if err != nil {
			return
		}
		binary := typ == websocket.MessageBinary
		end := false
		if !binary {
			var f struct {
				Type string `json:"type"`
				Data struct {
					PromptID string           `json:"prompt_id"`
					Node     *json.RawMessage `json:"node"`
				} `json:"data"`
			}
			if json.Unmarshal(b, &f) != nil || f.Type == "status" {
				continue
			}
			switch {
			case f.Data.PromptID == rl.prompt:
				started = true
			case rl.late && !started && f.Type == "executing" && f.Data.PromptID == "" && f.Data.Node != nil:
				// ComfyUI's current executing for a socket that opens
				// while the client's prompt runs names no prompt.
				started = true
				b = withPromptID(b, rl.prompt)
			case f.Data.PromptID != "" || !started:
				continue // another prompt's, or before this one started
			}
			switch f.Type {
			case "executed":
				b = rewriteExecuted(b, rl.url)
			case "executing":
				var node string
				if f.Data.Node != nil {
					_ = json.Unmarshal(*f.Data.Node, &node)
				}
				if node == "" {
					end = true
				} else if rl.client != "" {
					_ = st.SetRunningNode(bg, rl.client, rl.prompt, node)
				}
			}
		} else if !started {
			continue
		}
		if err := st.PublishFrame(bg, rl.client, binary, b); err != nil && !warned {
			warned = true
			rl.g.cfg.Logger.Warn("cannot relay a prompt's events through Redis", "prompt_id", rl.prompt, "err", err)
		}
		if end {
			return
		}
	}
}

// watchSettled renews the relay's claim and ends the relay
// relaySettledGrace after the prompt ended in Redis, for a machine whose
// last frames never come. A late relay ends at once when its prompt went
// back in line or to another machine (its dispatch was refused after the
// socket opened): the next dispatch relays it.
func (rl *relay) watchSettled() {
	t := time.NewTicker(relayCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-rl.ctx.Done():
			return
		case <-t.C:
		}
		_ = rl.g.cfg.Store.RenewRelay(rl.ctx, rl.prompt, relayClaimTTL)
		p, found, err := rl.g.cfg.Store.LookupPrompt(rl.ctx, rl.prompt)
		if err == nil && found && rl.late && (p.State == cluster.PromptWaiting || (p.URL != "" && p.URL != rl.url)) {
			rl.stop()
			return
		}
		if err != nil || (found && p.State != cluster.PromptDone) {
			continue
		}
		grace := time.NewTimer(relaySettledGrace)
		select {
		case <-rl.ctx.Done():
		case <-grace.C:
		}
		grace.Stop()
		rl.stop()
		return
	}
}

// tellFailed returns the func that sends the client of a prompt that
// failed outside its machine (the machine died, or refused it at dispatch)
// the frames ComfyUI ends a failed prompt with: execution_error with
// message, then executing with node null (to every socket for a prompt
// without a client_id, as ComfyUI). It reads the prompt's client now; for a
// prompt that already ended the func does nothing.
func (g *Gateway) tellFailed(ctx context.Context, id, message string) func() {
	p, found, err := g.cfg.Store.LookupPrompt(ctx, id)
	if err != nil || !found || p.State == cluster.PromptDone {
		return func() {}
	}
	var body struct {
		ClientID string `json:"client_id"`
	}
	if json.Unmarshal(p.Body, &body) != nil {
		return func() {}
	}
	return func() {
		for _, f := range []map[string]any{
			{"type": "execution_error", "data": map[string]any{
				"prompt_id": id, "node_id": "", "node_type": "", "executed": []string{},
				"exception_message": message, "exception_type": "gpulock.DispatchError", "traceback": []string{},
				"current_inputs": map[string]any{}, "current_outputs": map[string]any{}, "timestamp": time.Now().UnixMilli(),
			}},
			{"type": "executing", "data": map[string]any{"node": nil, "prompt_id": id}},
		} {
			b, _ := json.Marshal(f)
			if err := g.cfg.Store.PublishFrame(ctx, body.ClientID, false, b); err != nil {
				g.cfg.Logger.Warn("cannot tell the client its prompt failed", "prompt_id", id, "err", err)
				return
			}
		}
		if body.ClientID != "" {
			_ = g.cfg.Store.ClearRunning(ctx, body.ClientID, id)
			_ = g.cfg.Store.ClientPromptEnded(ctx, body.ClientID, id)
		}
	}
}

// relayAdopted relays the rest of a running prompt adopted from a gateway
// that is gone (its relay went with it), when a socket of the prompt's
// client is open; the machine sends the new socket the current executing.
func (g *Gateway) relayAdopted(p cluster.Prompt) {
	client, _ := promptNeeds(p.Body)
	if p.URL == "" {
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, redisBound)
	listening, _, err := g.cfg.Store.DispatchNeeds(ctx, client, p.URL, nil)
	cancel()
	if err != nil || !listening {
		return
	}
	if rl := g.openRelay(p.ID, client, p.URL, true); rl != nil {
		g.wg.Go(rl.run)
	}
}

// relayLateWait bounds how long a socket that opens waits for its
// client's prompts being dispatched to be recorded as running; it reads
// them again every relayLateEvery.
const (
	relayLateWait  = relayDialTimeout
	relayLateEvery = 50 * time.Millisecond
)

// relayLate starts the relay of each of client's prompts that run on a
// machine with none (they were dispatched while no socket of the client
// was open), when a socket of the client opened: it then gets their
// events from now on, the machine's current executing first, as ComfyUI
// sends a socket that reconnects. A prompt another gateway relays is left
// to it (its frames reach this socket through Redis). A prompt whose
// dispatch is under way (indexed, not yet recorded as running) is waited
// for, up to relayLateWait; one put back in line is relayed by its next
// dispatch, which finds the socket open.
func (g *Gateway) relayLate(client string) {
	deadline := time.Now().Add(relayLateWait)
	done := map[string]bool{}
	for {
		ctx, cancel := context.WithTimeout(g.ctx, redisBound)
		prompts, err := g.cfg.Store.ClientPrompts(ctx, client)
		cancel()
		if err != nil {
			g.cfg.Logger.Warn("cannot read a client's running prompts; those already running are not relayed", "client_id", client, "err", err)
			return
		}
		waiting := false
		for _, p := range prompts {
			switch {
			case done[p.ID]:
			case p.State == cluster.PromptRunning:
				done[p.ID] = true
				if rl := g.openRelay(p.ID, client, p.URL, true); rl != nil {
					g.wg.Go(rl.run)
				}
			default:
				waiting = true
			}
		}
		if !waiting || time.Now().After(deadline) {
			return
		}
		t := time.NewTimer(relayLateEvery)
		select {
		case <-g.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// withPromptID sets a frame's data.prompt_id (a frame it cannot read is
// returned as it is).
func withPromptID(b []byte, prompt string) []byte {
	var f map[string]json.RawMessage
	if json.Unmarshal(b, &f) != nil {
		return b
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(f["data"], &data) != nil || data == nil {
		return b
	}
	data["prompt_id"], _ = json.Marshal(prompt)
	f["data"], _ = json.Marshal(data)
	out, err := json.Marshal(f)
	if err != nil {
		return b
	}
	return out
}
