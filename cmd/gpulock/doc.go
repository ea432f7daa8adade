// Command gpulock shares GPUs between programs: one holder per GPU, waiters
// served in the order they came. It is a thin command line over the
// github.com/gpulock/gpulock/gpulock library; its locks are flock(2) locks on
// <lock-dir>/gpu<N>.lock, shared with util-linux flock(1).
//
//	gpulock exec [flags] [--] COMMAND [ARGS...]   run COMMAND holding a GPU lock
//	gpulock status [--json] [--watch] [--gpu SET] who holds and who waits
//
// Every flag can also be set by the environment variable GPULOCK_<FLAG>
// (--conflict-exit-code is GPULOCK_CONFLICT_EXIT_CODE), except --lock-dir,
// which is GPULOCK_DIR (default /tmp) and is accepted before or after the
// command name.
//
// # exec
//
// --gpu takes 0, a set (0,2 or 0-3, the first free GPU is taken, else the
// first released) or any (alias all: every GPU found, or GPULOCK_GPUS=<count>).
// COMMAND inherits the locked descriptor as fd 3, so the lock is freed only
// when the last process holding it exits, not while a CUDA child is still
// dying; --close passes nothing (flock -o). COMMAND runs in its own process
// group (the terminal's foreground group when gpulock had the terminal);
// SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to gpulock are
// passed to that group once. While gpulock still waits, they end the wait
// instead. On Linux a gpulock killed even with SIGKILL takes COMMAND along
// (COMMAND's own children that hold fd 3 keep the lock until they exit, as
// with flock(1)).
//
// COMMAND gets GPULOCK_HELD_GPU=<n> (appended, comma separated, to an
// enclosing exec's) and, unless --cuda-env=false, CUDA_VISIBLE_DEVICES=<n>
// and CUDA_DEVICE_ORDER=PCI_BUS_ID: --gpu numbers are nvidia-smi's. A
// CUDA_VISIBLE_DEVICES that the caller set is replaced by the GPU held, with
// a one-line notice on stderr unless --quiet; --cuda-env=false keeps it
// (and sets neither variable). A nested exec asking only for GPUs whose
// lock is held by this process or an ancestor (an enclosing exec, a
// flock(1) that runs gpulock), as the kernel's /proc/locks says, is refused
// with exit code 2 (it would wait for itself); from a set, those GPUs are
// dropped. GPULOCK_HELD_GPU is for the command to read: the guard does not
// trust it.
//
// --conflict-exit-code (default 75, EX_TEMPFAIL) is the exit code when the
// lock could not be had (--nonblock, --timeout); the message names the
// holder. flock(1)'s -E default is 1, which cannot be told apart from a
// command that failed; 75 says "try again later".
//
// # Exit codes
//
//	0        success
//	1-255    COMMAND's own exit code, passed on as is
//	2        usage: unknown command or flag, bad --gpu, missing COMMAND, bad
//	         GPULOCK_* value; also a nested exec on a GPU an enclosing exec holds
//	66       lock directory missing or not a directory (EX_NOINPUT)
//	69       --gpu any found no GPUs, or no flock(2) on this system, or
//	         `status --redis` cannot reach the cluster's Redis; gpulock-exec:
//	         a dead shim's https backend it cannot ask (EX_UNAVAILABLE)
//	70       internal error (EX_SOFTWARE)
//	71       COMMAND could not be started for a system reason (EX_OSERR)
//	73       lock file cannot be made or used: the lock path is a symlink, a
//	         directory, a socket or another non-regular file, or has more
//	         than one hard link; read-only or full file system (EX_CANTCREAT)
//	74       other I/O error on the lock (EX_IOERR)
//	75       lock not had: --nonblock or --timeout (EX_TEMPFAIL; --conflict-exit-code)
//	77       permission denied on the lock directory or file (EX_NOPERM)
//	126      COMMAND found but not executable
//	127      COMMAND not found
//	128+N    COMMAND killed by signal N; or gpulock's wait ended by signal N
//	         (130 SIGINT, 143 SIGTERM)
//
// # status
//
// One row per GPU lock file in the lock directory (or per GPU of --gpu),
// free or held with the holder's service, pid (and child pid), host, time
// held and command, then one row per waiter in line. Dead processes are not
// shown. --json prints the stable schema of gpulock.Status, one object per
// GPU (see `gpulock status --help`). --watch redraws every second until
// SIGINT or SIGTERM, then exits 0.
package main
