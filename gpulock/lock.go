package gpulock

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"time"
)

// MaxGPU is the highest GPU number gpulock accepts.
const MaxGPU = 1023

// validName reports whether name may name a lock: it becomes a file name.
// 1 to 64 letters, digits, '_' or '-', starting with a letter or digit.
func validName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '_' || name[0] == '-' {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Lock is an exclusive lock shared by every process on the machine that uses
// the same lock file: <dir>/<name>.lock, taken with flock(2) LOCK_EX.
//
// Fairness: processes take turns in the order they began waiting; a process
// with several waiters gets one turn and then goes to the back of the line
// if it still has waiters; inside a process, waiters are served first come,
// first served. TryAcquire never jumps ahead of waiters. Users of the plain
// flock(2) on the same file (flock(1), say) are excluded but do not queue.
//
// A Lock is safe for concurrent use. All Locks in a process that name the
// same file share one line.
type Lock struct {
	name string
	gpu  int // -1 for a named lock
	path string
	cfg  config
	q    *queue
	// descPrefix is the holder description as JSON up to the time, which
	// descriptionLine completes: the rest never changes.
	descPrefix []byte
}

// New returns the lock of GPU gpu: the file gpu<gpu>.lock in the lock
// directory. It does not touch the file system.
func New(gpu int, opts ...Option) (*Lock, error) {
	if gpu < 0 || gpu > MaxGPU {
		return nil, fmt.Errorf("%w: GPU %d is out of range 0-%d", ErrInvalidName, gpu, MaxGPU)
	}
	l, err := NewNamed("gpu"+strconv.Itoa(gpu), opts...)
	if err != nil {
		return nil, err
	}
	l.gpu = gpu
	return l, nil
}

// NewNamed returns the lock called name, for resources other than GPUs: the
// file <name>.lock in the lock directory. A name is 1 to 64 letters, digits,
// '_' or '-', starting with a letter or digit. It does not touch the file
// system.
func NewNamed(name string, opts ...Option) (*Lock, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w %s: use 1-64 letters, digits, '_' or '-', starting with a letter or digit", ErrInvalidName, quote(name))
	}
	cfg := newConfig(opts)
	dir, err := filepath.Abs(cfg.dir)
	if err != nil {
		return nil, &fs.PathError{Op: "lock dir", Path: cfg.dir, Err: err}
	}
	path := filepath.Join(dir, name+".lock")
	l := &Lock{name: name, gpu: -1, path: path, cfg: cfg, q: queueFor(path)}
	l.descPrefix = descriptionPrefix(l.description())
	return l, nil
}

// Name returns the lock's name, such as "gpu0".
func (l *Lock) Name() string { return l.name }

// GPU returns the GPU number of a lock made by New, or -1 for a named lock.
func (l *Lock) GPU() int { return l.gpu }

// Path returns the lock file's path.
func (l *Lock) Path() string { return l.path }

// queueDir is the directory of the lock's tickets.
func (l *Lock) queueDir() string { return queueDirOf(l.path) }

func queueDirOf(lockPath string) string {
	return lockPath[:len(lockPath)-len(".lock")] + ".queue"
}

// Acquire takes the lock, waiting in line as long as it takes or until ctx
// is done. On success it returns a Handle whose Release gives the lock back.
// If ctx is done first, it returns an error wrapping ctx.Err() and holds
// nothing: a grant that arrives afterwards is released at once. Other
// failures (an unusable lock file, say) are *fs.PathError values.
func (l *Lock) Acquire(ctx context.Context) (*Handle, error) {
	return l.q.acquire(ctx, l, l.cfg.turn)
}

// AcquireTurn is Acquire for a wait whose client and priority are turn's
// rather than the Lock's own (WithClient, WithPriority): a server that
// waits for many clients, as the shim does, names each one.
func (l *Lock) AcquireTurn(ctx context.Context, turn Turn) (*Handle, error) {
	return l.q.acquire(ctx, l, turn)
}

// AcquireTimeout is Acquire with a time limit; a limit of zero or less
// waits forever. When the limit passes it returns an error wrapping
// context.DeadlineExceeded.
func (l *Lock) AcquireTimeout(timeout time.Duration) (*Handle, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return l.Acquire(ctx)
}

// TryAcquire takes the lock only if it is free and nobody, in this process
// or another, is waiting for it; it never blocks. If the lock is held or
// others are in line it returns an error wrapping ErrBusy and holds nothing.
func (l *Lock) TryAcquire() (*Handle, error) {
	return l.q.tryAcquire(l)
}

// description is what others see of this process while it holds the lock.
func (l *Lock) description() Holder {
	return Holder{
		PID:     pid,
		Host:    hostname(),
		Service: l.cfg.service,
		Command: l.cfg.command,
		Since:   time.Now().UTC(),
		Backend: l.cfg.backend,
	}
}

// waiterDescription is what others see of this process while it waits.
func (l *Lock) waiterDescription(since time.Time, turn Turn) Waiter {
	return Waiter{
		PID:      pid,
		Host:     hostname(),
		Service:  l.cfg.service,
		Command:  l.cfg.command,
		Since:    since.UTC(),
		Client:   turn.Client,
		Priority: turn.Priority.clamp().String(),
	}
}
