package cluster

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Feed is one gateway's subscription to the line's hints and to the
// channels of the clients whose websockets it holds: one Redis connection
// for all of them. go-redis resubscribes after a disconnect by itself;
// frames sent meanwhile are lost (pub/sub is at most once).
type Feed struct {
	ps      *redis.PubSub
	deliver func(client string, f ClientFrame)

	mu      sync.Mutex
	waiting map[string][]chan struct{} // channel -> Joins waiting for Redis's confirmation
	started bool
	quit    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

// NewFeed returns a Feed that calls deliver, from one goroutine, for each
// frame of a joined client, with client "" for a frame for every socket,
// and with a ClientFrame whose Line is set for each line hint. deliver must
// not block. The Feed touches Redis at its first Join; Close it.
func (s *Store) NewFeed(deliver func(client string, f ClientFrame)) *Feed {
	return &Feed{ps: s.rdb.Subscribe(context.Background()), deliver: deliver,
		waiting: map[string][]chan struct{}{}, quit: make(chan struct{}), done: make(chan struct{})}
}

// Join subscribes to client's frames (and the line's hints) and returns
// once Redis confirmed it, so that no frame published after Join returned
// is missed, or with ctx's or Redis's error. Callers count their own
// joins: Leave undoes every Join of client at once.
func (f *Feed) Join(ctx context.Context, client string) error {
	ch := channelClient(client)
	wait := make(chan struct{})
	f.mu.Lock()
	if !f.started {
		f.started = true
		go f.run(f.ps.ChannelWithSubscriptions())
	}
	f.waiting[ch] = append(f.waiting[ch], wait)
	f.mu.Unlock()
	if err := f.ps.Subscribe(ctx, channelLine, channelClient(""), ch); err != nil {
		f.forget(ch, wait)
		return redisErr(err)
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		f.forget(ch, wait)
		return redisErr(context.Cause(ctx))
	case <-f.quit:
		return redisErr(context.Canceled)
	}
}

// Leave unsubscribes from client's frames.
func (f *Feed) Leave(ctx context.Context, client string) error {
	if err := f.ps.Unsubscribe(ctx, channelClient(client)); err != nil {
		return redisErr(err)
	}
	return nil
}

func (f *Feed) forget(ch string, wait chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.waiting[ch]
	for i, w := range list {
		if w == wait {
			f.waiting[ch] = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(f.waiting[ch]) == 0 {
		delete(f.waiting, ch)
	}
}

// run delivers messages and wakes Joins until Close.
func (f *Feed) run(in <-chan any) {
	defer close(f.done)
	for {
		var v any
		select {
		case <-f.quit:
			return
		case v = <-in:
			if v == nil {
				return
			}
		}
		switch m := v.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			f.mu.Lock()
			for _, w := range f.waiting[m.Channel] {
				close(w)
			}
			delete(f.waiting, m.Channel)
			f.mu.Unlock()
		case *redis.Message:
			if m.Channel == channelLine {
				f.deliver("", ClientFrame{Line: true})
				continue
			}
			client, ok := clientOfChannel(m.Channel)
			if !ok || len(m.Payload) == 0 {
				continue
			}
			f.deliver(client, ClientFrame{Binary: m.Payload[0] == frameBinary, Data: []byte(m.Payload[1:])})
		}
	}
}

func clientOfChannel(ch string) (string, bool) {
	return strings.CutPrefix(ch, channelClient(""))
}

// Close ends the subscription and waits for its goroutine; a second Close
// does nothing.
func (f *Feed) Close() error {
	var err error
	f.closed.Do(func() {
		f.mu.Lock()
		started := f.started
		f.started = true // no goroutine starts after Close
		f.mu.Unlock()
		close(f.quit)
		err = f.ps.Close()
		if started {
			<-f.done
		}
	})
	return err
}
