package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Timing of a client's websocket.
const (
	// wsReadLimit bounds one frame from a machine (ComfyUI's previews).
	wsReadLimit = 64 << 20
	// wsWriteTimeout bounds one write to the client: a client that reads
	// slower loses its socket.
	wsWriteTimeout = 10 * time.Second
	// wsStatusEvery is how often a gateway reads the line's length again,
	// on top of the line's hints (which pub/sub may lose).
	wsStatusEvery = time.Second
	// wsListenTTL is how long a socket counts as open after its last
	// renewal (every wsListenTTL/3): a client that reconnects within it
	// hears about prompts dispatched meanwhile.
	wsListenTTL = 30 * time.Second
)

// serveWebsocket answers ComfyUI's GET /ws?clientId=ID for the whole
// cluster. The client gets a status frame at once (with sid = its id, as
// ComfyUI sends) and whenever the cluster's queue_remaining (prompts
// waiting or running on every machine) changes, the current executing of
// each of its running prompts, then the events of its prompts wherever
// they run, relayed through Redis by the gateway that dispatched them
// (see relay); a prompt whose machine died ends with an execution_error
// naming the machine. The client's prompts that run unrelayed (dispatched
// while no socket of the client was open) are relayed from the socket's
// opening on (relayLate). The machines' own status frames are not
// relayed; a first feature_flags frame from the client is answered with
// the gateway's (featureFlags). It ends when the client leaves or the
// gateway closes; Redis down refuses the socket with 503.
func (g *Gateway) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	client := r.URL.Query().Get("clientId")
	if client == "" {
		client = strings.ReplaceAll(newUUID(), "-", "")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()
	sctx, scancel := context.WithTimeout(ctx, redisBound)
	in, err := g.hub.join(sctx, client)
	if err == nil {
		if err = g.cfg.Store.MarkListening(sctx, client, wsListenTTL); err != nil {
			g.hub.leave(in)
		}
	}
	scancel()
	if err != nil {
		g.redisDown(w, err)
		return
	}
	defer g.hub.leave(in)
	if client != "" {
		g.wg.Go(func() { g.relayLate(client) })
	}
	down, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	left := make(chan struct{})
	flags := make(chan struct{}, 1)
	go func() { // only a first feature_flags frame means anything; the client's close ends all
		defer close(left)
		first := true
		for {
			typ, b, err := down.Read(ctx)
			if err != nil {
				cancel()
				return
			}
			if first && typ == websocket.MessageText && isFeatureFlags(b) {
				flags <- struct{}{}
			}
			first = false
		}
	}()
	s := &clientSocket{g: g, client: client, conn: down, ctx: ctx, last: -1, flags: flags}
	s.serve(in)
	_ = down.Close(websocket.StatusGoingAway, "")
	cancel()
	<-left
}

// clientSocket is one client's websocket on this gateway; only serve's
// goroutine writes to it.
type clientSocket struct {
	g      *Gateway
	client string
	conn   *websocket.Conn
	ctx    context.Context
	last   int64           // queue_remaining last sent, -1 before the first
	flags  <-chan struct{} // the client sent its feature_flags
}

// serve sends the connect frames, then relays frames and status changes
// until the socket's context ends or a write fails.
func (s *clientSocket) serve(in *hubSocket) {
	if s.status(true) != nil {
		return
	}
	if s.currentExecuting() != nil {
		return
	}
	tick := time.NewTicker(wsListenTTL / 3)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-s.ctx.Done():
			return
		case f := <-in.frames:
			err = s.write(f.Binary, f.Data)
		case <-in.line:
			err = s.sendStatus(s.g.hub.remaining.Load(), false)
		case <-s.flags:
			err = s.write(false, s.g.featureFlags())
		case <-in.kicked:
			return // too slow: ComfyUI drops such a socket too
		case <-tick.C:
			_ = s.g.cfg.Store.MarkListening(s.ctx, s.client, wsListenTTL)
		}
		if err != nil {
			return
		}
	}
}

// write sends one frame, bounded by wsWriteTimeout.
func (s *clientSocket) write(binary bool, b []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, wsWriteTimeout)
	defer cancel()
	typ := websocket.MessageText
	if binary {
		typ = websocket.MessageBinary
	}
	return s.conn.Write(ctx, typ, b)
}

// status sends ComfyUI's status frame on connect, with sid, and the
// cluster's queue_remaining read now (0 when Redis cannot be read).
func (s *clientSocket) status(connect bool) error {
	ctx, cancel := context.WithTimeout(s.ctx, redisBound)
	n, err := s.g.cfg.Store.PromptsRemaining(ctx)
	cancel()
	if err != nil {
		n = 0
	}
	return s.sendStatus(n, connect)
}

// sendStatus sends a status frame of queue_remaining n if it is not the one
// sent last (always on connect, then with sid).
func (s *clientSocket) sendStatus(n int64, connect bool) error {
	if n < 0 || (n == s.last && !connect) {
		return nil
	}
	s.last = n
	data := map[string]any{"status": map[string]any{"exec_info": map[string]any{"queue_remaining": n}}}
	if connect {
		data["sid"] = s.client
	}
	b, _ := json.Marshal(map[string]any{"type": "status", "data": data})
	return s.write(false, b)
}

// currentExecuting sends the executing frame of each of the client's
// running prompts that has started a node, as ComfyUI does on connect.
func (s *clientSocket) currentExecuting() error {
	ctx, cancel := context.WithTimeout(s.ctx, redisBound)
	running, err := s.g.cfg.Store.RunningNodes(ctx, s.client)
	cancel()
	if err != nil {
		return nil
	}
	for prompt, node := range running {
		if node == "" {
			continue
		}
		b, _ := json.Marshal(map[string]any{"type": "executing", "data": map[string]any{"node": node, "display_node": node, "prompt_id": prompt}})
		if err := s.write(false, b); err != nil {
			return err
		}
	}
	return nil
}

// wsURL is a machine's websocket for clientId.
func wsURL(base, path, client string) string {
	u, _ := url.Parse(base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = path
	u.RawQuery = url.Values{"clientId": {client}}.Encode()
	return u.String()
}
