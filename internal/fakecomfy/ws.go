package fakecomfy

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// handleWebsocket serves GET /ws?clientId=ID: a status frame on connect
// (and the running node if this client's prompt runs), then every frame
// meant for this client until either side closes. Frames from the client
// are read and ignored.
func (s *Server) handleWebsocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	s.sockets.Add(1)
	s.mu.Unlock()
	defer s.sockets.Done()

	// The Origin check is checkOrigin's, as in ComfyUI.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	conn.SetReadLimit(1 << 20)
	sid := r.URL.Query().Get("clientId")
	if sid == "" {
		sid = newID()
	}
	c := &wsClient{sid: sid, out: make(chan wsMessage, wsOutboxSize), kicked: make(chan struct{})}

	s.mu.Lock()
	status := map[string]any{"status": s.statusLocked(), "sid": sid}
	s.clients[c] = struct{}{}
	s.sendOneLocked(c, "status", status)
	if it := s.running; it != nil && it.clientID == sid && it.node != "" {
		s.sendOneLocked(c, "executing", map[string]any{"node": it.node, "display_node": it.node, "prompt_id": it.promptID})
	}
	s.mu.Unlock()
	defer s.dropClient(c)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	defer func() { <-readDone }()

	for {
		select {
		case msg := <-c.out:
			typ := websocket.MessageText
			if msg.binary {
				typ = websocket.MessageBinary
			}
			if err := conn.Write(ctx, typ, msg.b); err != nil {
				conn.CloseNow()
				return
			}
		case <-c.kicked:
			conn.Close(websocket.StatusPolicyViolation, "too slow")
			return
		case <-s.quit:
			closeWithGrace(conn, cancel)
			return
		case <-ctx.Done():
			conn.CloseNow()
			return
		}
	}
}

// sendOneLocked queues a frame for one socket. s.mu is held.
func (s *Server) sendOneLocked(c *wsClient, typ string, data map[string]any) {
	msg, err := jsonFrame(typ, data)
	if err != nil {
		return
	}
	select {
	case c.out <- wsMessage{b: msg}:
	default:
	}
}

// dropClient stops sending to c.
func (s *Server) dropClient(c *wsClient) {
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
}

// closeGrace is how long Close waits for a client to answer the close
// handshake before dropping the connection.
const closeGrace = 200 * time.Millisecond

// closeWithGrace sends a going-away close frame and, if the client does not
// answer within closeGrace, drops the connection by cancelling the context
// of its pending read (cancel).
func closeWithGrace(conn *websocket.Conn, cancel context.CancelFunc) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Close(websocket.StatusGoingAway, "server closing")
	}()
	timer := time.NewTimer(closeGrace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		cancel()
		<-done
	}
}
