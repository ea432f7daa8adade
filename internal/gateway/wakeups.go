package gateway

import (
	"context"
	"sync"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/redis/go-redis/v9"
)

// wakeups routes the matched channel's hints to the jobs waiting here: each
// hint carries the match itself, so that a woken job dispatches without
// reading its state back from Redis.
type wakeups struct {
	mu      sync.Mutex
	waiting map[string]chan cluster.Match
}

func newWakeups() *wakeups { return &wakeups{waiting: map[string]chan cluster.Match{}} }

// add returns the channel that a hint for job sends its match on (the
// newest one only), and its removal.
func (k *wakeups) add(job string) (<-chan cluster.Match, func()) {
	ch := make(chan cluster.Match, 1)
	k.mu.Lock()
	k.waiting[job] = ch
	k.mu.Unlock()
	return ch, func() {
		k.mu.Lock()
		delete(k.waiting, job)
		k.mu.Unlock()
	}
}

// poke hands a matched channel message to its job's waiter, if it waits
// here; an older hint not yet taken gives way to it.
func (k *wakeups) poke(payload string) {
	job, m, ok := cluster.ParseMatched(payload)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ch := k.waiting[job]
	if ch == nil {
		return
	}
	select {
	case <-ch:
	default:
	}
	ch <- m // poke is the only sender, under k.mu, and the buffer is empty
}

// recheck makes every job waiting here read its state again: a hint with
// no match.
func (k *wakeups) recheck() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, ch := range k.waiting {
		select {
		case ch <- cluster.Match{}:
		default: // a hint is there already: it wakes the job
		}
	}
}

// listen pokes waiters from the matched channel until ctx ends. go-redis
// resubscribes after a disconnect by itself; hints sent meanwhile are lost,
// so every resubscription makes every waiter read its state again.
func (k *wakeups) listen(ctx context.Context, st *cluster.Store) {
	ps := st.SubscribeMatched(ctx)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions()
	subscribed := false
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Message:
				k.poke(m.Payload)
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					if subscribed {
						k.recheck()
					}
					subscribed = true
				}
			}
		}
	}
}
