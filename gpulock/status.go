package gpulock

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Status is a lock's state as any process can read it, without taking the
// lock. Its JSON form is the schema of `gpulock status --json` and of the
// shim's /gpulock/status: keep it stable.
type Status struct {
	// Name is the lock's name, such as "gpu0".
	Name string `json:"name"`
	// GPU is the GPU number, or null for a named lock.
	GPU *int `json:"gpu"`
	// Path is the lock file.
	Path string `json:"path"`
	// Held reports whether any process holds the flock now.
	Held bool `json:"held"`
	// Holder describes the holder; null when free, or when the holder left
	// no description (flock(1), or a gpulock process that died while its
	// child holds on). It is what the holder wrote: see Owner.
	Holder *HolderStatus `json:"holder"`
	// Owner is the kernel's view of the holder, which no user can forge:
	// set while the lock is held, where the kernel's lock table can be read
	// (Linux). An orphan (Owner.Gone) is a lock whose taker has exited while
	// processes that inherited it hold on.
	Owner *Owner `json:"owner,omitempty"`
	// Waiters lists the processes in line, first in line first.
	Waiters []WaiterStatus `json:"waiters"`
	// Error, set only by ListStatus, says why this lock could not be read
	// (a non-regular file at its path, say); the rest is then incomplete.
	Error string `json:"error,omitempty"`
}

// HolderStatus is a Holder with how long it has held the lock.
type HolderStatus struct {
	Holder
	// HeldSeconds is how long the lock has been held, at the time of reading.
	HeldSeconds float64 `json:"held_seconds"`
}

// WaiterStatus is a Waiter with its place in line.
type WaiterStatus struct {
	Waiter
	// Position is the place in line, 1 for the next to hold the lock.
	Position int `json:"position"`
	// WaitedSeconds is how long it has waited, at the time of reading.
	WaitedSeconds float64 `json:"waited_seconds"`
	// Owner is the kernel's view of the ticket: the process holding it and
	// the user who made it. Where it is known, a ticket with no readable
	// description is listed too (its Waiter fields empty but Since).
	Owner *Owner `json:"owner,omitempty"`
}

// Status reads the lock's state. Processes that have died are not reported.
func (l *Lock) Status() (Status, error) {
	return readStatus(l.path, l.name, l.gpu)
}

// ListStatus reads the state of every GPU lock (gpu<N>.lock) in dir, in GPU
// order. A missing directory is an error; a directory with no GPU locks
// gives an empty list. A lock that cannot be read does not hide the others:
// it is listed with its Error set, and the errors of all such locks are
// returned too, joined, with the complete list.
func ListStatus(dir string) ([]Status, error) {
	names, err := readDirNames(dir)
	if err != nil {
		return nil, err
	}
	var gpus []int
	for _, n := range names {
		if gpu, ok := gpuOfFileName(n); ok {
			gpus = append(gpus, gpu)
		}
	}
	slices.Sort(gpus)
	out := make([]Status, 0, len(gpus))
	var errs []error
	for _, gpu := range gpus {
		name := "gpu" + strconv.Itoa(gpu)
		st, err := readStatus(filepath.Join(dir, name+".lock"), name, gpu)
		if err != nil {
			st.Error = err.Error()
			errs = append(errs, err)
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

// gpuOfFileName returns N for a file named gpu<N>.lock.
func gpuOfFileName(name string) (int, bool) {
	num, ok := strings.CutPrefix(name, "gpu")
	if !ok {
		return 0, false
	}
	num, ok = strings.CutSuffix(num, ".lock")
	if !ok || num == "" || (len(num) > 1 && num[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > MaxGPU {
		return 0, false
	}
	return n, true
}

// readStatus reads one lock's state. On an error it returns what it could
// read with the error.
func readStatus(path, name string, gpu int) (Status, error) {
	st := Status{Name: name, Path: path, Waiters: []WaiterStatus{}}
	if gpu >= 0 {
		st.GPU = &gpu
	}
	now := time.Now()
	r := newOwnerReader()
	f, err := openNoFollow(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Never used: free, and nobody can be waiting on it.
	case err != nil:
		return st, badOpen(path, err)
	default:
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return st, err
		}
		if err := checkLockFileInfo(path, fi); err != nil {
			return st, err
		}
		var h Holder
		described := decodeFirstLine(readHead(f), &h) && alive(h.Host, h.PID, h.ChildPID)
		describedPID := 0
		if described {
			describedPID = h.PID
		}
		owner, held, known := r.lockOwner(fi, describedPID)
		if !known {
			held = isHeld(f, fi)
		}
		st.Held, st.Owner = held, owner
		if st.Held && described {
			st.Holder = &HolderStatus{Holder: h, HeldSeconds: now.Sub(h.Since).Seconds()}
		}
	}
	d, err := openQueueDir(queueDirOf(path), false)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	defer d.close()
	tickets, err := listTickets(d)
	if err != nil {
		return st, err
	}
	for _, name := range tickets {
		t, ok := readTicket(d, name)
		if !ok {
			continue
		}
		var owner *Owner
		if fi, err := t.f.Stat(); err == nil {
			describedPID := 0
			if t.raw {
				describedPID = t.w.PID
			}
			owner = r.ticketOwner(fi, describedPID)
		}
		t.f.Close()
		w := t.w
		if !t.raw {
			if owner == nil {
				continue
			}
			w = Waiter{Since: ticketTime(name)}
		}
		st.Waiters = append(st.Waiters, WaiterStatus{Waiter: w, Position: len(st.Waiters) + 1, WaitedSeconds: now.Sub(w.Since).Seconds(), Owner: owner})
	}
	return st, nil
}

// ticketTime is the arrival time at the start of a ticket's name.
func ticketTime(name string) time.Time {
	ns, err := strconv.ParseInt(name[:ticketTimeDigits], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// isHeld reports whether any process holds a flock on the open file f. It
// asks the kernel's lock table where there is one, which disturbs nobody;
// elsewhere it tries a shared lock for an instant.
func isHeld(f *os.File, fi fs.FileInfo) bool {
	if held, known := heldInLockTable(fi); known {
		return held
	}
	err := flockFD(f, false, false)
	if err == nil {
		_ = unlockFD(f)
		return false
	}
	return isWouldBlock(err)
}
