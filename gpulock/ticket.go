package gpulock

import (
	"errors"
	"fmt"
	"github.com/gofrs/flock"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
	dir  string
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

// ensureQueueDir makes the queue directory if it is missing. It refuses a
// symlink or a non-directory at that path.
func ensureQueueDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		err = os.Mkdir(dir, 0o777)
		if err == nil || errors.Is(err, fs.ErrExist) {
			_ = os.Chmod(dir, queueDirPerm) // undo the umask; best effort, and only the owner may
			fi, err = os.Lstat(dir)
		}
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "queue", Path: dir, Err: errors.New("not a directory")}
	}
	return nil
}

// createTicket puts this process at the back of the line. The ticket is
// written and flocked under a temporary name first and only then renamed
// into view, so every visible ticket of a live process is locked.
func createTicket(dir string, w Waiter) (*ticket, error) {
	if err := ensureQueueDir(dir); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, fmt.Sprintf("%s%d-%08x", tempPrefix, pid, rand.Uint32()))
	f, err := openNoFollow(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, ticketPerm)
	if err != nil {
		return nil, err
	}
	// A scanner may hold a shared probe on it for an instant: wait that out.
	if err := flockFD(f, true, true); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, &fs.PathError{Op: "flock", Path: tmp, Err: err}
	}
	_ = f.Chmod(ticketPerm)
	if _, err := f.WriteAt(encodeLine(w), 0); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	name := fmt.Sprintf("%0*d-%d-%08x", ticketTimeDigits, time.Now().UnixNano(), pid, rand.Uint32())
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return &ticket{dir: dir, name: name, f: f}, nil
}

// remove takes the ticket out of line. The name goes first, so the
// successor, woken by the close, finds it gone. The queue directory stays:
// removing it when empty would save an uncontended acquisition three
// syscalls but make every turn under contention create it again, which
// measured slower.
func (t *ticket) remove() {
	_ = os.Remove(filepath.Join(t.dir, t.name))
	_ = t.f.Close()
}

// listTickets returns the visible tickets in dir in arrival order. A missing
// directory is an empty line. Temporary tickets left by a process that died
// while writing one are removed on the way.
func listTickets(dir string) ([]string, error) {
	names, err := readDirNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	tickets := names[:0]
	for _, n := range names {
		switch {
		case isTicketName(n):
			tickets = append(tickets, n)
		case strings.HasPrefix(n, tempPrefix):
			removeStaleTemp(filepath.Join(dir, n))
		}
	}
	slices.Sort(tickets)
	return tickets, nil
}

func removeStaleTemp(path string) {
	fi, err := os.Lstat(path)
	if err != nil || time.Since(fi.ModTime()) < staleTempAge {
		return
	}
	probeTicket(path)
}

// probeTicket reports whether the ticket at path belongs to a live process,
// and returns it as a gofrs/flock lock to wait on (RLock) if so. A dead
// ticket is removed where we may; one we may not remove (another user's,
// in a sticky directory) or cannot open is skipped, never waited on.
func probeTicket(path string) (*flock.Flock, bool) {
	t := flock.New(path, flock.SetFlag(os.O_RDONLY|oNoFollow|oNonBlock))
	free, err := t.TryRLock()
	switch {
	case err != nil:
		return nil, false // gone, unreadable, or not a file: skip it
	case free:
		_ = os.Remove(path) // its owner died
		_ = t.Unlock()
		return nil, false
	}
	return t, true
}

// waitTurn blocks until no live ticket is ahead of t. It waits in flock(2)
// on the ticket just ahead, and looks again whenever that one goes away.
// It cannot be interrupted; it returns early only when the queue directory
// cannot be read (order is then lost, never exclusion).
func waitTurn(t *ticket) {
	for {
		names, err := listTickets(t.dir)
		if err != nil {
			return
		}
		ahead, _ := slices.BinarySearch(names, t.name)
		waited := false
		for i := ahead - 1; i >= 0 && !waited; i-- {
			prev, ok := probeTicket(filepath.Join(t.dir, names[i]))
			if !ok {
				continue
			}
			_ = prev.RLock() // until that process's turn is over or it dies
			_ = prev.Unlock()
			waited = true
		}
		if !waited {
			return
		}
	}
}

// anyLiveTicket reports whether any live process is in line in dir.
func anyLiveTicket(dir string) (bool, error) {
	names, err := listTickets(dir)
	if err != nil {
		return false, err
	}
	for i := len(names) - 1; i >= 0; i-- {
		if _, ok := probeTicket(filepath.Join(dir, names[i])); ok {
			return true, nil
		}
	}
	return false, nil
}

// readTicket returns the description in a live ticket.
func readTicket(path string) (Waiter, bool) {
	if _, ok := probeTicket(path); !ok {
		return Waiter{}, false
	}
	f, err := openNoFollow(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Waiter{}, false
	}
	defer f.Close()
	var w Waiter
	if !decodeFirstLine(readHead(f), &w) {
		return Waiter{}, false
	}
	return w, true
}
