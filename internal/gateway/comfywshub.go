package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// wsOutbox is how many frames a client's websocket may lag behind the
// cluster before it is dropped as too slow (as ComfyUI's fake drops one).
const wsOutbox = 1024

// wsHub fans the gateway's one Redis subscription (cluster.Feed) out to
// the client websockets it holds; it subscribes to a client's channel
// while the gateway holds a socket of that client. It reads the cluster's
// queue_remaining once for all its sockets, on each line hint and every
// wsStatusEvery (hints may be lost), in one goroutine it owns.
type wsHub struct {
	store     *cluster.Store
	remaining atomic.Int64 // the last queue_remaining read, -1 before
	dirty     chan struct{}
	quit      chan struct{}
	done      chan struct{}

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
	h := &wsHub{store: st, sockets: map[string]map[*hubSocket]struct{}{},
		dirty: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	h.remaining.Store(-1)
	return h
}

// watchLine reads queue_remaining when the line changed (or every
// wsStatusEvery) and tells every socket when it moved, until close.
func (h *wsHub) watchLine() {
	defer close(h.done)
	t := time.NewTicker(wsStatusEvery)
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-h.dirty:
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), redisBound)
		n, err := h.store.PromptsRemaining(ctx)
		cancel()
		if err != nil || h.remaining.Swap(n) == n {
			continue
		}
		h.mu.Lock()
		for _, set := range h.sockets {
			for s := range set {
				select {
				case s.line <- struct{}{}:
				default:
				}
			}
		}
		h.mu.Unlock()
	}
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
		go h.watchLine()
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
		select {
		case h.dirty <- struct{}{}:
		default:
		}
		return
	}
	if client != "" {
		h.send(h.sockets[client], f)
		return
	}
	for _, set := range h.sockets { // a prompt without a client_id: every socket
		h.send(set, f)
	}
}

// send queues f for each socket of set. h.mu is held.
func (h *wsHub) send(set map[*hubSocket]struct{}, f cluster.ClientFrame) {
	for s := range set {
		select {
		case s.frames <- f:
		default:
			s.once.Do(func() { close(s.kicked) })
		}
	}
}

// close ends the feed and the line's watch; sockets end with the
// gateway's context.
func (h *wsHub) close() {
	h.mu.Lock()
	h.closed = true
	feed := h.feed
	h.mu.Unlock()
	if feed != nil {
		_ = feed.Close()
		close(h.quit)
		<-h.done
	}
}
