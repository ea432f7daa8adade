package gateway

import (
	"context"
	"sync"

	"github.com/gpulock/gpulock/internal/cluster"
)

// wsOutbox is how many frames a client's websocket may lag behind the
// cluster before it is dropped as too slow (as ComfyUI's fake drops one).
const wsOutbox = 1024

// wsHub fans the gateway's one Redis subscription (cluster.Feed) out to
// the client websockets it holds; it subscribes to a client's channel
// while the gateway holds a socket of that client.
type wsHub struct {
	store *cluster.Store

	mu      sync.Mutex // also orders the feed's joins and leaves
	feed    *cluster.Feed
	sockets map[string]map[*hubSocket]struct{} // by client
	closed  bool
}

// hubSocket is one websocket's inbox.
type hubSocket struct {
	client string
	frames chan cluster.ClientFrame
	line   chan struct{} // a hint that the line changed
	kicked chan struct{} // closed when the socket lagged too far
	once   sync.Once
}

func newWSHub(st *cluster.Store) *wsHub {
	return &wsHub{store: st, sockets: map[string]map[*hubSocket]struct{}{}}
}

// join registers a socket of client and returns once Redis confirmed the
// client's subscription (bounded by ctx), or with the error; leave undoes
// it.
func (h *wsHub) join(ctx context.Context, client string) (*hubSocket, error) {
	s := &hubSocket{client: client, frames: make(chan cluster.ClientFrame, wsOutbox),
		line: make(chan struct{}, 1), kicked: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, context.Canceled
	}
	if h.feed == nil {
		h.feed = h.store.NewFeed(h.deliver)
	}
	if h.sockets[client] == nil {
		h.sockets[client] = map[*hubSocket]struct{}{}
	}
	h.sockets[client][s] = struct{}{}
	feed := h.feed
	h.mu.Unlock()
	// Every socket waits for a confirmation: a second socket of the client
	// may come while the first one's is on its way.
	if err := feed.Join(ctx, client); err != nil {
		h.leave(s)
		return nil, err
	}
	return s, nil
}

// leave unregisters a socket; the last one of its client unsubscribes.
func (h *wsHub) leave(s *hubSocket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.sockets[s.client]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(h.sockets, s.client)
		if h.feed != nil && !h.closed {
			ctx, cancel := context.WithTimeout(context.Background(), redisBound)
			_ = h.feed.Leave(ctx, s.client)
			cancel()
		}
	}
}

// deliver is the feed's callback: it never blocks, and drops a socket
// whose inbox is full.
func (h *wsHub) deliver(client string, f cluster.ClientFrame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.Line {
		for _, set := range h.sockets {
			for s := range set {
				select {
				case s.line <- struct{}{}:
				default:
				}
			}
		}
		return
	}
	for s := range h.sockets[client] {
		select {
		case s.frames <- f:
		default:
			s.once.Do(func() { close(s.kicked) })
		}
	}
}

// close ends the feed; sockets end with the gateway's context.
func (h *wsHub) close() {
	h.mu.Lock()
	h.closed = true
	feed := h.feed
	h.mu.Unlock()
	if feed != nil {
		_ = feed.Close()
	}
}
