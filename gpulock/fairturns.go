package gpulock

import (
	"container/list"
	"time"
)

// The fair-turn rules, in one place.
//
// Inside a process, the next waiter to get the lock is the one with the
// highest level (priority plus aging); among those, the one whose client
// had the lock least recently (a client that never had it first); among
// those, the first to come. That is round-robin between the clients that
// wait, first come first served within a client.
//
// Across processes, a process's place in line is a ticket whose name sorts
// by a key: the time it queued, moved one aging step earlier per level
// above normal (later per level below), and, with fair turns, no earlier
// than one aging step after the last place in line of the same client. A
// client with many places in line thus gets one per round, and a client
// that comes later is not left behind all of them.

// maxRemembered bounds how many clients a rotation remembers beyond the
// ones waiting.
const maxRemembered = 1024

// rotation remembers when each client last had the lock, counted in turns.
type rotation struct {
	turn uint64
	last map[string]uint64
}

// lastServed returns the turn at which client last had the lock, 0 if it
// never had it or has been forgotten.
func (r *rotation) lastServed(client string) uint64 { return r.last[client] }

// served records that client has the lock now. It forgets clients that no
// longer wait once it remembers too many: forgetting one only moves it
// ahead of waiting clients that had the lock later, where it already was.
func (r *rotation) served(client string, waiters *list.List) {
	if r.last == nil {
		r.last = map[string]uint64{}
	}
	r.turn++
	r.last[client] = r.turn
	if len(r.last) <= maxRemembered+waiters.Len() {
		return
	}
	keep := make(map[string]uint64, waiters.Len()+1)
	for e := waiters.Front(); e != nil; e = e.Next() {
		c := e.Value.(*waiter).turn.Client
		if t, ok := r.last[c]; ok {
			keep[c] = t
		}
	}
	keep[client] = r.turn
	r.last = keep
}

// nextLocked returns the waiter whose turn is next, or nil if none waits.
func (q *queue) nextLocked(now time.Time) *list.Element {
	front := q.waiters.Front()
	if front == nil {
		return nil
	}
	fair := front.Value.(*waiter).lock.cfg.fair
	best := front
	bw := front.Value.(*waiter)
	bestLevel, bestLast := bw.level(now), q.turns.lastServed(bw.turn.Client)
	for e := front.Next(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		level := w.level(now)
		var last uint64
		if fair {
			last = q.turns.lastServed(w.turn.Client)
		}
		if level > bestLevel || level == bestLevel && fair && last < bestLast {
			best, bestLevel, bestLast = e, level, last
		}
	}
	return best
}

// level is the waiter's priority now, with aging.
func (w *waiter) level(now time.Time) Priority {
	return w.turn.Level(w.since, now, w.lock.cfg.aging)
}

// placeKey is the sort key of the place in line that w's process takes at
// now, for w's turn (see the rules above).
func (w *waiter) placeKey(qdir string, now time.Time) time.Time {
	aging := w.lock.cfg.aging
	key := now.Add(-time.Duration(w.level(now)) * aging)
	if !w.lock.cfg.fair || aging <= 0 {
		return key
	}
	if last, ok := lastPlaceOf(qdir, w.turn.Client); ok && key.Before(last.Add(aging)) {
		key = last.Add(aging)
	}
	return key
}

// lastPlaceOf returns the key of the last live place in line in qdir of
// client, if it has one. Only tickets whose name's tag is client's (or that
// have no tag) are opened; the description inside decides.
func lastPlaceOf(qdir, client string) (time.Time, bool) {
	d, err := openQueueDir(qdir, false)
	if err != nil {
		return time.Time{}, false
	}
	defer d.close()
	names, err := listTickets(d)
	if err != nil {
		return time.Time{}, false
	}
	want := clientTag(client)
	for i := len(names) - 1; i >= 0; i-- {
		if tag, ok := nameClientTag(names[i]); ok && tag != want {
			continue // another client's, by its name: not opened
		}
		t, ok := readTicket(d, names[i])
		if !ok {
			continue
		}
		_ = t.f.Close()
		if t.raw && t.w.Client == client {
			return ticketKey(names[i]), true
		}
	}
	return time.Time{}, false
}
