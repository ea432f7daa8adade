package gpulock

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The order layer: one ticket file per waiting process in the queue
// directory beside the lock file. See the package documentation.
const (
	// queueDirPerm lets every user queue while only a ticket's owner can
	// remove it (the sticky bit).
	queueDirPerm = 0o777 | fs.ModeSticky
	// ticketPerm lets every user read a ticket and flock it shared, which is
	// all a successor or a status reader does.
	ticketPerm fs.FileMode = 0o644
	// tempPrefix marks a ticket still being written; it is not in line yet.
	tempPrefix = ".tmp-"
	// staleTempAge is how old an unlocked temporary ticket must be before a
	// scanner removes it (its owner died while making it).
	staleTempAge = time.Minute
	// ticketTimeDigits is the width of the arrival time at the start of a
	// ticket's name, so that names sort in arrival order.
	ticketTimeDigits = 20
)

// ticket is this process's place in line for one lock. While the ticket
// exists its owner holds LOCK_EX on it, so a live ticket is one that cannot
// be flocked shared.
type ticket struct {
	d    *qdir
	name string
	f    *os.File
}

// isTicketName reports whether name is a visible ticket: arrival time, pid
// and a random tag.
func isTicketName(name string) bool {
	if len(name) < ticketTimeDigits+2 || name[ticketTimeDigits] != '-' {
		return false
	}
	for _, c := range name[:ticketTimeDigits] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isTempName reports whether name is exactly what createTicket names a
// ticket still being written: ".tmp-<pid>-<8 hex digits>".
func isTempName(name string) bool {
	rest, ok := strings.CutPrefix(name, tempPrefix)
	if !ok {
		return false
	}
	num, tag, ok := strings.Cut(rest, "-")
	if !ok || num == "" || len(tag) != 8 {
		return false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range tag {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ensureQueueDir makes the queue directory if it is missing. It refuses a
// symlink or a non-directory at that path.
func ensureQueueDir(dir string) error {
	d, err := openQueueDir(dir, true)
	if err != nil {
		return err
	}
	d.close()
	return nil
}

// createTicket puts this process in line at key (see placeKey; the time it
// queued, for plain arrival order). The ticket is written and flocked under
// a temporary name first and only then renamed into view, so every visible
// ticket of a live process is locked.
func createTicket(dir string, w Waiter, key time.Time) (*ticket, error) {
	t, err := prepareTicket(dir)
	if err != nil {
		return nil, err
	}
	if err := t.enter(w, key); err != nil {
		return nil, err
	}
	return t, nil
}

// prepareTicket makes a ticket under its temporary name, flocked and not
// yet in line: the costly part of taking a place (a file made in the queue
// directory), which a holder with more waiters does ahead, while it holds
// the lock, so that its release has only enter left to do.
func prepareTicket(dir string) (*ticket, error) {
	d, err := openQueueDir(dir, true)
	if err != nil {
		return nil, err
	}
	tmp := fmt.Sprintf("%s%d-%08x", tempPrefix, pid, rand.Uint32())
	f, err := d.open(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, ticketPerm)
	if err != nil {
		d.close()
		return nil, err
	}
	t := &ticket{d: d, name: tmp, f: f}
	// A scanner may hold a shared probe on it for an instant: wait that out.
	if err := flockFD(f, true, true); err != nil {
		t.remove()
		return nil, &fs.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	_ = f.Chmod(ticketPerm)
	return t, nil
}

// enter writes w into a prepared ticket and renames it into view at key.
// On failure the ticket is removed.
func (t *ticket) enter(w Waiter, key time.Time) error {
	if _, err := t.f.WriteAt(encodeLine(w), 0); err != nil {
		t.remove()
		return err
	}
	name := fmt.Sprintf("%0*d-%d-%08x%s%016x", ticketTimeDigits, max(key.UnixNano(), 0), pid, rand.Uint32(),
		clientTagSep, clientTag(w.Client))
	if err := t.d.rename(t.name, name); err != nil {
		t.remove()
		return err
	}
	t.name = name
	return nil
}

// clientTagSep starts the end of a ticket's name that tags its client (see
// clientTag), so that a scan for one client's places (lastPlaceOf) opens only
// the tickets that may be its.
const clientTagSep = "-c"

// clientTag is a hash of a ticket's client, for its name.
func clientTag(client string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(client))
	return h.Sum64()
}

// nameClientTag returns the client tag at the end of a ticket's name, if it
// has one (names made before tags were added have none).
func nameClientTag(name string) (uint64, bool) {
	const n = len(clientTagSep) + 16
	if len(name) < ticketTimeDigits+n || name[len(name)-n:len(name)-16] != clientTagSep {
		return 0, false
	}
	tag, err := strconv.ParseUint(name[len(name)-16:], 16, 64)
	return tag, err == nil
}

// ticketKey returns the key a ticket's name sorts by.
func ticketKey(name string) time.Time {
	n, err := strconv.ParseInt(name[:ticketTimeDigits], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// remove takes the ticket out of line. The name goes first, so the
// successor, woken by the close, finds it gone. The queue directory stays:
// removing it when empty would save an uncontended acquisition three
// syscalls but make every turn under contention create it again, which
// measured slower.
func (t *ticket) remove() {
	t.d.removeIfSame(t.name, t.f)
	_ = t.f.Close()
	t.d.close()
}

// listTickets returns the visible tickets in d in arrival order. Temporary
// tickets left by a process that died while writing one are removed on the
// way.
func listTickets(d *qdir) ([]string, error) {
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	tickets := names[:0]
	for _, n := range names {
		switch {
		case isTicketName(n):
			tickets = append(tickets, n)
		case isTempName(n):
			removeStaleTemp(d, n)
		}
	}
	slices.Sort(tickets)
	return tickets, nil
}

func removeStaleTemp(d *qdir, name string) {
	mtime, ok := d.modTime(name)
	if !ok || time.Since(mtime) < staleTempAge {
		return
	}
	if f, live := probeTicket(d, name); live {
		f.Close()
	}
}

// probeTicket reports whether the ticket name in d belongs to a live
// process, and returns it open to wait on (a shared flock) if so. Only a
// regular file is looked at. A dead ticket is removed where we may; one we
// may not remove (another user's, in a sticky directory) or cannot open is
// skipped, never waited on.
func probeTicket(d *qdir, name string) (*os.File, bool) {
	f, err := d.open(name, os.O_RDONLY|oNonBlock, 0)
	if err != nil {
		return nil, false // gone, unreadable, or a symlink: skip it
	}
	if !isRegularFile(f) {
		f.Close()
		return nil, false
	}
	err = flockFD(f, false, false)
	switch {
	case err == nil:
		d.removeIfSame(name, f) // its owner died
		f.Close()
		return nil, false
	case isWouldBlock(err):
		return f, true
	}
	f.Close()
	return nil, false
}

// waitTurn blocks until no live ticket is ahead of t. It waits in flock(2)
// on the ticket just ahead, and looks again whenever that one goes away.
// It cannot be interrupted; it returns early only when the queue directory
// cannot be read (order is then lost, never exclusion).
func waitTurn(t *ticket) {
	for {
		names, err := listTickets(t.d)
		if err != nil {
			return
		}
		ahead, _ := slices.BinarySearch(names, t.name)
		waited := false
		for i := ahead - 1; i >= 0 && !waited; i-- {
			prev, ok := probeTicket(t.d, names[i])
			if !ok {
				continue
			}
			_ = flockFD(prev, false, true) // until that process's turn is over or it dies
			prev.Close()
			waited = true
		}
		if !waited {
			return
		}
	}
}

// liveTicketAhead reports whether a live ticket sorts before t: one taken
// after t's process finished waiting its turn, with an earlier key.
func liveTicketAhead(t *ticket) bool {
	names, err := listTickets(t.d)
	if err != nil {
		return false
	}
	ahead, _ := slices.BinarySearch(names, t.name)
	for i := ahead - 1; i >= 0; i-- {
		if f, ok := probeTicket(t.d, names[i]); ok {
			f.Close()
			return true
		}
	}
	return false
}

// anyLiveTicket reports whether any live process is in line in dir. A
// missing directory is an empty line.
func anyLiveTicket(dir string) (bool, error) {
	d, err := openQueueDir(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer d.close()
	names, err := listTickets(d)
	if err != nil {
		return false, err
	}
	for i := len(names) - 1; i >= 0; i-- {
		if f, ok := probeTicket(d, names[i]); ok {
			f.Close()
			return true, nil
		}
	}
	return false, nil
}

// liveTicket is a ticket of a live process as a status reader sees it.
type liveTicket struct {
	w   Waiter
	f   *os.File
	raw bool // the description could be read
}

// readTicket returns the description in a live ticket, with the ticket
// open (the caller closes it) for the kernel's view of its owner.
func readTicket(d *qdir, name string) (liveTicket, bool) {
	f, ok := probeTicket(d, name)
	if !ok {
		return liveTicket{}, false
	}
	t := liveTicket{f: f}
	t.raw = decodeFirstLine(readHead(f), &t.w)
	return t, true
}
