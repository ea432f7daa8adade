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
	// child holds on).
	Holder *HolderStatus `json:"holder"`
	// Waiters lists the processes in line, first in line first.
	Waiters []WaiterStatus `json:"waiters"`
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
}

// Status reads the lock's state. Processes that have died are not reported.
func (l *Lock) Status() (Status, error) {
	return readStatus(l.path, l.name, l.gpu)
}

// ListStatus reads the state of every GPU lock (gpu<N>.lock) in dir, in GPU
// order. A missing directory is an error; a directory with no GPU locks
// gives an empty list.
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
	for _, gpu := range gpus {
		name := "gpu" + strconv.Itoa(gpu)
		st, err := readStatus(filepath.Join(dir, name+".lock"), name, gpu)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
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

func readStatus(path, name string, gpu int) (Status, error) {
	st := Status{Name: name, Path: path, Waiters: []WaiterStatus{}}
	if gpu >= 0 {
		st.GPU = &gpu
	}
	now := time.Now()
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
		st.Held = isHeld(f, fi)
		var h Holder
		if st.Held && decodeFirstLine(readHead(f), &h) && alive(h.Host, h.PID, h.ChildPID) {
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
		t.f.Close()
		if !t.raw {
			continue
		}
		w := t.w
		st.Waiters = append(st.Waiters, WaiterStatus{Waiter: w, Position: len(st.Waiters) + 1, WaitedSeconds: now.Sub(w.Since).Seconds()})
	}
	return st, nil
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
