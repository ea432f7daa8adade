package simgpu

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// fileMutex is a mutual exclusion lock across processes (flock on a file)
// and across goroutines of this process (a sync.Mutex, which also lets the
// race detector see the order).
type fileMutex struct {
	mu   sync.Mutex
	path string
}

// lock blocks until this process and no other holds the lock; it returns
// the unlock function, or an error with nothing held.
func (m *fileMutex) lock() (unlock func(), err error) {
	m.mu.Lock()
	f, err := os.OpenFile(m.path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("simgpu: open mutex: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		m.mu.Unlock()
		return nil, fmt.Errorf("simgpu: flock %s: %w", m.path, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
		m.mu.Unlock()
	}, nil
}
