package fakecomfy

import (
	"encoding/json"
	"time"
)

// wsOutboxSize is how many frames a socket may lag behind before it is
// dropped as too slow.
const wsOutboxSize = 1024

// Event types that ComfyUI also keeps in a prompt's history messages.
var historyEvents = map[string]bool{
	"execution_start": true, "execution_cached": true, "execution_success": true,
	"execution_error": true, "execution_interrupted": true,
}

// wsClient is one open websocket.
type wsClient struct {
	sid    string
	out    chan wsMessage // frames to write, in order
	kicked chan struct{}  // closed when the client lagged too far
}

// wsMessage is one frame to write: JSON text, or a binary preview.
type wsMessage struct {
	binary bool
	b      []byte
}

// Frame is one JSON websocket frame: {"type": T, "data": {...}}.
type Frame struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// sendLocked queues a frame for the sockets of sid, or for every socket if
// sid is empty. A socket whose outbox is full is dropped. s.mu is held, which
// keeps every socket's frames in one global order.
func (s *Server) sendLocked(sid, typ string, data map[string]any) {
	msg, err := jsonFrame(typ, data)
	if err != nil {
		return
	}
	s.sendMessageLocked(sid, wsMessage{b: msg})
}

// sendMessageLocked queues one frame for the sockets of sid (every socket
// if sid is empty), dropping a socket whose outbox is full. s.mu is held.
func (s *Server) sendMessageLocked(sid string, msg wsMessage) {
	for c := range s.clients {
		if sid != "" && c.sid != sid {
			continue
		}
		select {
		case c.out <- msg:
		default:
			delete(s.clients, c)
			close(c.kicked)
		}
	}
}

// broadcastStatusLocked sends the queue length to every socket. s.mu is held.
func (s *Server) broadcastStatusLocked() {
	s.sendLocked("", "status", map[string]any{"status": s.statusLocked()})
}

// statusLocked returns {"exec_info": {"queue_remaining": N}}. s.mu is held.
func (s *Server) statusLocked() map[string]any {
	return map[string]any{"exec_info": map[string]any{"queue_remaining": s.queueRemainingLocked()}}
}

// emitLocked sends a per-prompt event to the prompt's client (to everyone
// if it has none) and keeps history events in the prompt's messages. s.mu
// is held.
func (s *Server) emitLocked(it *queueItem, typ string, data map[string]any) {
	if historyEvents[typ] {
		it.messages = append(it.messages, [2]any{typ, data})
	}
	s.sendLocked(it.clientID, typ, data)
}

// nowMillis returns the time as ComfyUI's event timestamps write it.
func nowMillis() int64 { return time.Now().UnixMilli() }

// jsonFrame encodes one websocket frame.
func jsonFrame(typ string, data map[string]any) ([]byte, error) {
	return json.Marshal(Frame{Type: typ, Data: data})
}
