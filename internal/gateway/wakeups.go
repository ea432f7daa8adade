package gateway

import (
	"context"
	"sync"

	"github.com/gpulock/gpulock/internal/cluster"
)

// wakeups routes the matched channel's hints to the jobs waiting here.
type wakeups struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

func newWakeups() *wakeups { return &wakeups{waiting: map[string]chan struct{}{}} }

// add returns the channel that a hint for job pokes, and its removal.
func (k *wakeups) add(job string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	k.mu.Lock()
	k.waiting[job] = ch
	k.mu.Unlock()
	return ch, func() {
		k.mu.Lock()
		delete(k.waiting, job)
		k.mu.Unlock()
	}
}

func (k *wakeups) poke(job string) {
	k.mu.Lock()
	ch := k.waiting[job]
	k.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// listen pokes waiters from the matched channel until ctx ends. go-redis
// resubscribes after a disconnect by itself; hints sent meanwhile are lost,
// which the waiters' polling covers.
func (k *wakeups) listen(ctx context.Context, st *cluster.Store) {
	ps := st.SubscribeMatched(ctx)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			k.poke(m.Payload)
		}
	}
}
