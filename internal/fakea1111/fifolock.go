package fakea1111

import "sync"

// fifoLock is a mutual exclusion lock granted in arrival order, like the
// threading lock A1111's queue_lock wraps. Lock blocks until the lock is
// handed over; there is no cancellation, as in A1111.
type fifoLock struct {
	mu      sync.Mutex
	held    bool
	waiters []chan struct{}
}

// lock blocks until the caller holds the lock; earlier callers go first.
func (l *fifoLock) lock() {
	l.mu.Lock()
	if !l.held {
		l.held = true
		l.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	<-ch
}

// unlock hands the lock to the oldest waiter, or frees it.
func (l *fifoLock) unlock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.waiters) == 0 {
		l.held = false
		return
	}
	next := l.waiters[0]
	l.waiters = l.waiters[1:]
	close(next)
}

// waiting returns how many callers wait for the lock.
func (l *fifoLock) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiters)
}
