package shim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Reconnection backoff of the shim's ComfyUI websocket.
const (
	minReconnectDelay = 100 * time.Millisecond
	maxReconnectDelay = 2 * time.Second
)

// promptWatch holds the GPU lock for ComfyUI prompts that the shim has
// forwarded, and releases each when ComfyUI reports it finished. It listens
// to ComfyUI's websocket under its own client id: status frames (sent to
// every socket on each queue change) and the events of prompts sent without
// a client id (which the shim names itself) tell it when to look; it then
// asks /queue which prompts are still there. A slow timer looks too, in case
// the websocket is down. A prompt that is gone from the queue is finished:
// done, failed, interrupted, deleted, or lost with a ComfyUI restart.
type promptWatch struct {
	s        *Shim
	clientID string
	wake     chan struct{}

	mu       sync.Mutex
	seq      uint64 // counts track calls
	held     map[string]*heldPrompt
	expected map[string]bool // prompts being forwarded, not yet held
	stopped  bool            // the watch no longer runs: track releases at once
}

// heldPrompt is a forwarded prompt and the lock held for it.
type heldPrompt struct {
	id          string
	hd          *hold
	seq         uint64 // when it was tracked, in track calls
	interrupted time.Time
}

func newPromptWatch(s *Shim) *promptWatch {
	return &promptWatch{
		s:        s,
		clientID: "gpulock-shim-" + newUUID(),
		wake:     make(chan struct{}, 1),
		held:     map[string]*heldPrompt{},
		expected: map[string]bool{},
	}
}

// expect marks a prompt that is being forwarded as the shim's own, so that
// finding it in ComfyUI's queue before track is not taken for the
// backend's own work.
func (pw *promptWatch) expect(id string) {
	pw.mu.Lock()
	pw.expected[id] = true
	pw.mu.Unlock()
}

// unexpect forgets a prompt that ComfyUI did not take.
func (pw *promptWatch) unexpect(id string) {
	pw.mu.Lock()
	delete(pw.expected, id)
	pw.mu.Unlock()
}

// track hands the lock held for a forwarded prompt to the watch. After the
// watch stopped (a shutdown that timed out), the prompt is interrupted and
// its lock released at once: nobody would look after it.
func (pw *promptWatch) track(id string, hd *hold) {
	pw.mu.Lock()
	if pw.stopped {
		delete(pw.expected, id)
		pw.mu.Unlock()
		pw.s.cfg.Logger.Error("prompt forwarded after the shutdown's wait; interrupting it", "prompt_id", id)
		_ = pw.s.interrupt(context.Background(), id)
		hd.release(outcomeShutdown, "prompt_id", id)
		return
	}
	delete(pw.expected, id)
	hd.unlimit() // the watch bounds a held prompt (check)
	old := pw.held[id]
	pw.seq++
	pw.held[id] = &heldPrompt{id: id, hd: hd, seq: pw.seq}
	pw.mu.Unlock()
	if old != nil {
		old.hd.release(outcomeDone, "prompt_id", id) // the same id again: ComfyUI replaced it
	}
	pw.poke()
}

// poke asks the watch to look at the queue now.
func (pw *promptWatch) poke() {
	select {
	case pw.wake <- struct{}{}:
	default:
	}
}

// count returns the number of prompts held for.
func (pw *promptWatch) count() int {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return len(pw.held)
}

// run checks the held prompts whenever poked or every WatchInterval, until ctx ends.
func (pw *promptWatch) run(ctx context.Context) {
	t := time.NewTicker(pw.s.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pw.wake:
		case <-t.C:
		}
		pw.check(ctx)
	}
}

// check releases the lock of every held prompt that left ComfyUI's queue,
// and interrupts those held longer than MaxHold.
func (pw *promptWatch) check(ctx context.Context) {
	// Only prompts tracked before the queue is asked for can be missing
	// from its answer because they finished: one tracked while the answer
	// is on its way may simply not have been queued yet when it was made.
	pw.mu.Lock()
	asked := pw.seq
	pw.mu.Unlock()
	inQueue, err := pw.s.comfyQueue(ctx)
	if err != nil && ctx.Err() != nil {
		return // the watch is stopping: the question was cut off, ComfyUI is not to blame
	}
	down := errors.Is(err, errBackendDown)
	unknown := err != nil && !down // ComfyUI answers, but not its queue
	if unknown {
		pw.s.cfg.Logger.Warn("cannot read ComfyUI's queue; holding the GPU until it answers or --max-hold", "err", err)
	} else {
		pw.coverForeign(ctx, inQueue)
	}
	now := time.Now()
	var done []*heldPrompt
	var outcomes []string
	pw.mu.Lock()
	for id, p := range pw.held {
		if p.seq > asked {
			continue // the next look decides
		}
		outcome := ""
		switch {
		case down:
			outcome = outcomeUpstreamDown
		case !unknown && !inQueue[id]:
			outcome = outcomeDone
		case pw.s.cfg.MaxHold > 0 && p.interrupted.IsZero() && p.hd.holdFor() > pw.s.cfg.MaxHold:
			p.interrupted = now
			pw.s.cfg.Logger.Warn("prompt held the GPU past --max-hold; interrupting it", "prompt_id", id, "max_hold", pw.s.cfg.MaxHold)
			go func() { _ = pw.s.interrupt(context.WithoutCancel(ctx), id) }()
		case !p.interrupted.IsZero() && now.Sub(p.interrupted) > pw.s.cfg.IdleTimeout:
			pw.s.cfg.Logger.Error("prompt still running after interrupt; releasing the GPU anyway", "prompt_id", id)
			outcome = outcomeMaxHold
		}
		if outcome != "" {
			delete(pw.held, id)
			done = append(done, p)
			outcomes = append(outcomes, outcome)
		}
	}
	pw.mu.Unlock()
	pw.finish(done, outcomes)
}

// coverForeign holds the GPU on ComfyUI's behalf while its queue holds
// prompts the shim did not forward (queued on ComfyUI's port directly).
func (pw *promptWatch) coverForeign(ctx context.Context, inQueue map[string]bool) {
	pw.mu.Lock()
	foreign := false
	for id := range inQueue {
		if pw.held[id] == nil && !pw.expected[id] {
			foreign = true
			break
		}
	}
	pw.mu.Unlock()
	pw.s.cover.set(ctx, foreign)
}

// finish releases the locks of prompts taken out of held.
func (pw *promptWatch) finish(done []*heldPrompt, outcomes []string) {
	for i, p := range done {
		p.hd.release(outcomes[i], "prompt_id", p.id)
	}
}

// stop marks the watch as no longer running (at the end of a shutdown).
func (pw *promptWatch) stop() {
	pw.mu.Lock()
	pw.stopped = true
	pw.mu.Unlock()
}

// releaseAll gives up every held prompt's lock (at the end of a shutdown).
func (pw *promptWatch) releaseAll(outcome string) {
	pw.mu.Lock()
	var done []*heldPrompt
	var outcomes []string
	for id, p := range pw.held {
		delete(pw.held, id)
		done = append(done, p)
		outcomes = append(outcomes, outcome)
	}
	pw.mu.Unlock()
	pw.finish(done, outcomes)
}

// interruptAll asks ComfyUI to stop every held prompt.
func (pw *promptWatch) interruptAll(ctx context.Context) {
	pw.mu.Lock()
	ids := make([]string, 0, len(pw.held))
	for id := range pw.held {
		ids = append(ids, id)
	}
	pw.mu.Unlock()
	for _, id := range ids {
		_ = pw.s.interrupt(ctx, id)
	}
}

// listen keeps a websocket to ComfyUI open until ctx ends, poking the watch
// on every frame that may mean a prompt finished, and on every disconnect.
func (pw *promptWatch) listen(ctx context.Context) {
	delay := minReconnectDelay
	for ctx.Err() == nil {
		connected := pw.listenOnce(ctx)
		pw.poke()
		if connected {
			delay = minReconnectDelay
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxReconnectDelay)
	}
}

// listenOnce reads one websocket connection to its end. It reports whether
// it connected at all.
func (pw *promptWatch) listenOnce(ctx context.Context) bool {
	u := *pw.s.cfg.Upstream
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path = u.JoinPath("ws").Path
	u.RawQuery = "clientId=" + pw.clientID
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: pw.s.transport}})
	if err != nil {
		return false
	}
	defer conn.CloseNow()
	conn.SetReadLimit(-1) // preview images can be large; they are read and dropped
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return true
		}
		if typ != websocket.MessageText {
			continue // previews
		}
		var frame struct {
			Type string `json:"type"`
			Data struct {
				Node       *string `json:"node"`
				Value, Max float64 // of a "progress" frame
			} `json:"data"`
		}
		if json.Unmarshal(data, &frame) != nil {
			continue
		}
		switch frame.Type {
		case "status", "execution_success", "execution_error", "execution_interrupted":
			pw.poke()
		case "executing":
			if frame.Data.Node == nil { // the prompt's last event
				pw.poke()
			}
		case "progress": // only for prompts that named the shim's client_id
			pw.s.page.setProgress(frame.Data.Value, frame.Data.Max)
		}
	}
}
