package gpulock

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"time"
)

// queues holds the one queue of each lock file this process uses, so that
// all Locks naming the same file share one line and one kernel waiter.
var (
	queuesMu sync.Mutex
	queues   = map[string]*queue{}
)

func queueFor(path string) *queue {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	q := queues[path]
	if q == nil {
		q = &queue{path: path, qdir: queueDirOf(path)}
		queues[path] = q
	}
	return q
}

// queue is this process's side of one lock: an in-memory FIFO of waiters in
// front of at most one goroutine (the runner) that waits in the kernel for
// the process's turn and then for the flock.
type queue struct {
	path string
	qdir string

	mu      sync.Mutex
	waiters list.List // of *waiter, first come first served
	held    bool      // a Handle of this process holds the lock
	running bool      // the runner goroutine is alive
	ticket  *ticket   // this process's place in line, if it has one
	spare   *ticket   // a prepared ticket for the next place (see prepareSpare)
	gen     uint64    // counts withdrawals of the place in line
	turns   rotation  // which clients had the lock lately
	// placeErr is why the last try to take a place in line failed.
	placeErr error
	// head is where a new holder reads what the lock file held (newHandle).
	head [maxInfoSize]byte
	// hmap maps the start of the lock file for its holders (headMap).
	hmap *headMap
}

// waiter is one Acquire call in line.
type waiter struct {
	lock  *Lock
	turn  Turn
	since time.Time
	elem  *list.Element // nil once granted, failed or gone
	ch    chan result   // receives exactly one result once elem is nil'ed by the runner
}

type result struct {
	h   *Handle
	err error
}

// idleLocked reports whether nothing of this process holds or waits.
func (q *queue) idleLocked() bool {
	return !q.held && !q.running && q.waiters.Len() == 0
}

func (q *queue) acquire(ctx context.Context, l *Lock, turn Turn) (*Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, gaveUp(l, err)
	}
	q.mu.Lock()
	if q.idleLocked() {
		h, err := q.tryLocked(l)
		if err == nil || !errors.Is(err, ErrBusy) {
			q.mu.Unlock()
			return h, err
		}
	}
	w := &waiter{lock: l, turn: turn, since: time.Now(), ch: make(chan result, 1)}
	w.elem = q.waiters.PushBack(w)
	if ctx.Done() == nil && !q.running && !q.held {
		// A wait that cannot be given up needs no goroutine of its own
		// beside the runner: this one is the runner, and a grant to itself
		// is no hand-over between goroutines.
		q.takePlaceLocked()
		q.running = true
		q.mu.Unlock()
		q.run(w)
		r := <-w.ch // ours now, or, if another waiter's turn came first, from a later runner
		return r.h, r.err
	}
	q.startRunnerLocked()
	q.mu.Unlock()

	select {
	case r := <-w.ch:
		return r.h, r.err
	case <-ctx.Done():
	}
	q.mu.Lock()
	if w.elem != nil {
		q.waiters.Remove(w.elem)
		w.elem = nil
		if q.waiters.Len() == 0 {
			q.withdrawLocked()
		}
		q.mu.Unlock()
	} else {
		q.mu.Unlock()
		if r := <-w.ch; r.h != nil {
			_ = r.h.Release() // granted as we gave up: nobody wants it
		}
	}
	return nil, gaveUp(l, ctx.Err())
}

func gaveUp(l *Lock, err error) error {
	return fmt.Errorf("gpulock: gave up waiting for %s: %w", l.path, err)
}

func (q *queue) tryAcquire(l *Lock) (*Handle, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.idleLocked() {
		return nil, busy(l)
	}
	return q.tryLocked(l)
}

func busy(l *Lock) error { return fmt.Errorf("%w: %s", ErrBusy, l.path) }

// tryLocked takes the lock if it is free and no other process is in line.
func (q *queue) tryLocked(l *Lock) (*Handle, error) {
	live, err := anyLiveTicket(q.qdir)
	if errors.Is(err, ErrBadQueueDir) {
		return nil, err // another user may have planted it: refuse, touch nothing
	}
	if err == nil && live {
		return nil, busy(l)
	}
	f, fi, err := q.lockFile(false)
	if err != nil {
		if isWouldBlock(err) {
			return nil, busy(l)
		}
		return nil, err
	}
	q.held = true
	return newHandle(q, l, f, fi), nil
}

// lockFile opens the lock file and flocks it, waiting or not. It returns
// only a lock on the file that the path names now, with the file's info as
// it was just before the flock.
func (q *queue) lockFile(wait bool) (*os.File, fs.FileInfo, error) {
	for {
		f, fi, err := openLockFile(q.path)
		if err != nil {
			return nil, nil, err
		}
		if err := flockFD(f, true, wait); err != nil {
			f.Close()
			if isWouldBlock(err) {
				return nil, nil, err
			}
			return nil, nil, &fs.PathError{Op: "flock", Path: q.path, Err: err}
		}
		same, err := stillNamed(fi, q.path)
		if err == nil && same {
			return f, fi, nil
		}
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		// The file was deleted or replaced while we waited: lock the new one.
	}
}

// startRunnerLocked starts the runner when waiters need one. It takes the
// process's place in line first, right here: the moment a process begins
// waiting (its first waiter, or its release with more waiters) is its
// place in line, however late the runner goroutine gets a CPU.
func (q *queue) startRunnerLocked() {
	if q.running || q.held || q.waiters.Len() == 0 {
		return
	}
	q.takePlaceLocked()
	q.running = true
	go q.run(nil)
}

// takePlaceLocked puts the process in line if it is not, for its first
// waiter. Without a place (the queue directory is not usable) the runner
// waits on the lock file alone: order is lost, exclusion is not.
func (q *queue) takePlaceLocked() {
	if q.ticket != nil || q.waiters.Len() == 0 {
		return
	}
	now := time.Now()
	next := q.nextLocked(now).Value.(*waiter)
	desc := next.lock.waiterDescription(next.since, next.turn)
	key := next.placeKey(q.qdir, now)
	t, err := q.spare, error(nil)
	q.spare = nil
	if t == nil {
		t, err = prepareTicket(q.qdir)
	}
	if err == nil {
		err = t.enter(desc, key)
	}
	if err == nil {
		q.ticket = t
	}
	q.placeErr = err
}

// prepareSpare makes the ticket for this process's next place in line
// ahead, while it holds the lock and has more waiters, so that the release
// only writes and renames it (see prepareTicket). The runner has it called
// right after it handed the lock over (tidy); two at once are harmless, the
// second ticket made is removed.
func (q *queue) prepareSpare() {
	q.mu.Lock()
	need := q.spare == nil && q.held && q.waiters.Len() > 0
	q.mu.Unlock()
	if !need {
		return
	}
	t, err := prepareTicket(q.qdir)
	if err != nil {
		return // the release takes its place the slow way, and sees the error
	}
	q.mu.Lock()
	if q.spare == nil && q.held {
		q.spare, t = t, nil
	}
	q.mu.Unlock()
	if t != nil {
		t.remove() // released meanwhile: its place was taken without it
	}
}

// dropSpareLocked removes a prepared ticket that no release will use.
func (q *queue) dropSpareLocked() {
	if q.spare != nil {
		q.spare.remove()
		q.spare = nil
	}
}

// withdrawLocked gives up this process's place in line, so that nobody waits
// behind a process that no longer wants the lock.
func (q *queue) withdrawLocked() {
	if q.ticket != nil {
		q.ticket.remove()
		q.ticket = nil
	}
	q.dropSpareLocked()
	q.gen++
}

// run is the one goroutine per process and lock that waits in the kernel. It
// takes a place at the back of the line, waits for its turn and for the
// flock, and hands the lock to the first waiter. It exits when nobody waits
// or a Handle of this process holds the lock; Release starts it again.
// self is the waiter whose goroutine runs it, if run was called in an
// Acquire rather than started on its own.
func (q *queue) run(self *waiter) {
	for {
		q.mu.Lock()
		if q.held || q.waiters.Len() == 0 {
			// A holder's place for its next turn (taken as it releases)
			// stays; a place nobody waits for goes.
			if q.waiters.Len() == 0 {
				q.withdrawLocked()
			}
			q.running = false
			q.mu.Unlock()
			return
		}
		q.takePlaceLocked() // again, after a withdrawal
		if errors.Is(q.placeErr, ErrBadQueueDir) {
			q.failAllLocked(q.placeErr)
			q.placeErr = nil
			continue
		}
		t, gen := q.ticket, q.gen
		q.mu.Unlock()

		if t != nil {
			waitTurn(t)
		}
		f, fi, err := q.lockFile(true)
		if err == nil && t != nil && liveTicketAhead(t) {
			// A place earlier than ours was taken while we waited in
			// flock (a higher level, a client's turn): let it go first.
			_ = unlockFD(f)
			f.Close()
			continue
		}

		q.mu.Lock()
		switch {
		case err != nil:
			q.failAllLocked(err)
		case gen != q.gen || q.waiters.Len() == 0:
			// Everybody gave up while we waited: let the lock go and, if
			// somebody came since, queue again at the back.
			_ = unlockFD(f)
			f.Close()
		default:
			// Hand the lock over first; our place in line, which the next
			// process waits on, goes right after.
			done := q.ticket
			q.ticket = nil
			q.gen++
			w := q.waiters.Remove(q.nextLocked(time.Now())).(*waiter)
			w.elem = nil
			q.turns.served(w.turn.Client, &q.waiters)
			q.held = true
			w.ch <- result{h: newHandle(q, w.lock, f, fi)}
			q.mu.Unlock()
			if w == self {
				// Return to the caller now; the old place and the next one
				// are seen to beside it.
				go q.tidy(done)
				continue
			}
			// Let the new holder's goroutine run now, on this thread,
			// rather than after the clean-up below or on another thread
			// woken for it.
			runtime.Gosched()
			q.tidy(done)
			continue
		}
		q.mu.Unlock()
	}
}

// tidy removes the place in line that the new holder had, done (if any),
// and makes its next ticket ahead if it has more waiters.
func (q *queue) tidy(done *ticket) {
	if done != nil {
		done.remove()
	}
	q.prepareSpare()
}

// failAllLocked answers every waiter with err.
func (q *queue) failAllLocked(err error) {
	for e := q.waiters.Front(); e != nil; e = q.waiters.Front() {
		w := q.waiters.Remove(e).(*waiter)
		w.elem = nil
		w.ch <- result{err: err}
	}
	q.withdrawLocked()
}

// releasing is called by a Handle before it gives the lock back: if this
// process has more waiters, it goes to the back of the line now, while it
// still holds the lock, so that no other process can take two turns while
// this one is slow to queue again.
func (q *queue) releasing() {
	q.mu.Lock()
	q.takePlaceLocked()
	q.mu.Unlock()
}

// released is called by a Handle once the lock is given back.
func (q *queue) released() {
	q.mu.Lock()
	q.held = false
	if q.waiters.Len() == 0 {
		q.dropSpareLocked()
	}
	q.startRunnerLocked()
	q.mu.Unlock()
}
