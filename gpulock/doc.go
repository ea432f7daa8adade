// Package gpulock is an exclusive, fair, crash-safe lock per GPU, shared by
// every process on a machine.
//
// # The lock
//
// The lock for GPU N is the file gpu<N>.lock in a lock directory (default
// /tmp, or $GPULOCK_DIR, or [WithDir]). Mutual exclusion rests on flock(2)
// LOCK_EX on that exact file and nothing else, so gpulock excludes, and is
// excluded by, util-linux flock(1) and any other flock user:
//
//	flock /tmp/gpu0.lock python train.py   # waits for, and blocks, gpulock users of GPU 0
//
// The kernel releases a flock when the last descriptor of its open file is
// closed, so the lock dies with its holder: a process killed with SIGKILL
// leaves nothing behind that blocks anyone.
//
// # Fair turns
//
// Plain flock(2) is not fair: a process that releases and asks again at once
// can barge ahead of a process already blocked in flock. gpulock adds an
// order layer on top of the flock:
//
//   - Processes take turns in the order they began waiting. A process with
//     several waiters gets one turn and, if it still has waiters, goes to
//     the back of the line.
//   - Inside a process, waiters are served strictly first come, first served.
//
// The order layer is a directory gpu<N>.queue beside the lock file that holds
// one ticket file per waiting process, named by arrival time. A ticket
// becomes visible only once its owner holds a flock on it, so a ticket whose
// owner died is recognised at once (its flock is gone) and skipped. Each
// waiting process blocks in flock(2) on the ticket of the process just ahead
// of it; only the head of the line blocks on gpu<N>.lock itself. Deleting or
// corrupting the queue directory can cost order, never exclusion: the
// exclusion is the flock on gpu<N>.lock alone.
//
// # Waiting without polling, and cancellation
//
// A waiter sleeps in the kernel and is woken by the release. A goroutine
// blocked in flock(2) cannot be interrupted from Go (the runtime installs
// signal handlers with SA_RESTART, and closing the descriptor does not wake
// it), so each process keeps at most one kernel waiter per lock: a goroutine
// that waits in flock(2) on behalf of an in-memory FIFO of waiters. A waiter
// whose context ends leaves the FIFO at once; if the FIFO empties, the
// process's ticket is withdrawn so that nobody waits behind it, and a grant
// that arrives later with nobody left to take it is released at once. That
// one goroutine may outlive every waiter while it sits in flock(2); it exits
// as soon as the kernel lets it go.
//
// # Seeing who holds it
//
// The holder writes a one-line JSON description of itself ([Holder]: pid,
// host, service name and, by default, only the program's base name) into the
// lock file and blanks it on release, unless it still passes on a dead
// holder's description that names a backend ([Handle.KeepLeftover]);
// tickets carry the waiters' descriptions ([Waiter]). [Lock.Status] and [ListStatus] read both without
// taking the lock, and never report a dead process as live. Anyone who can
// write the file can write a description, so they also report the kernel's
// view ([Owner], on Linux): the pid that /proc/locks says holds each flock,
// its user (a ticket's: the file's owner), a description that names another
// pid, and a lock held on by processes that outlived the one that took it.
//
// # Lock files
//
// Lock files are never deleted and never followed through a symlink, and one
// that is not a regular file ([ErrNotRegular]) or has more than one hard
// link ([ErrHardLinked]) is refused. A
// missing file is created readable and lockable by all users; an existing one
// is opened without O_CREAT, so a file another user made in a sticky /tmp
// works. After acquiring, gpulock checks that the path still names the locked
// file (an age-based /tmp cleaner could have removed it), and a long holder
// refreshes the file's times so such cleaners leave it alone. Use a local
// filesystem: flock over NFS is emulated and not reliable.
//
// # Primitives
//
// Tickets are probed and waited on with github.com/gofrs/flock (TryRLock,
// RLock) opened with O_NOFOLLOW. The lock file itself is opened and flocked
// with golang.org/x/sys/unix, because gpulock needs its descriptor: to write
// the holder description and to hand the locked descriptor to a child
// (Handle.File), which gofrs/flock does not expose. Its TryLockContext
// polls, so it is never the wait path.
//
// On systems without flock(2) (Windows, Plan 9, js/wasm) every acquisition
// returns an error wrapping [errors.ErrUnsupported].
package gpulock
