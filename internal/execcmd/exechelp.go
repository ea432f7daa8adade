package execcmd

// ExecHelp is `gpulock exec --help`, as urfave/cli writes it for the gpulock
// binary. gpulock-exec prints it without linking urfave/cli. Generated from
// ExecFlagSpecs and the texts of exec.go (ExecUsage...) by
//
//	go test ./internal/execcli -run TestExecHelpIsCurrent -update
//
// which fails, saying so, while it is out of date.
const ExecHelp = `NAME:
   gpulock exec - run a command while holding a GPU lock

USAGE:
   gpulock exec [flags] [--] COMMAND [ARGS...]

DESCRIPTION:
   Waits in line for the GPU, runs COMMAND holding its lock, and returns
   COMMAND's exit code. The lock is the flock(2) of <lock-dir>/gpu<N>.lock, shared
   with util-linux flock(1). COMMAND inherits the locked descriptor as fd 3 (unless
   --close), so the lock is freed only when the last process holding it exits.

   COMMAND runs in a process group of its own, shared only with gpulock's guard
   process (which ignores signals); SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1
   and SIGUSR2 sent to gpulock are passed on to that group once. If gpulock is
   killed, even with SIGKILL, COMMAND's whole process group is killed too
   (SIGTERM, then SIGKILL a second later), so the lock is freed. When gpulock
   runs in a terminal's foreground, COMMAND's group becomes the foreground group
   (job control works as usual) and gpulock takes the terminal back after.

   COMMAND gets GPULOCK_HELD_GPU=<n> and, unless --cuda-env=false,
   CUDA_VISIBLE_DEVICES=<n> and CUDA_DEVICE_ORDER=PCI_BUS_ID, so GPU n is
   nvidia-smi's GPU n. A CUDA_VISIBLE_DEVICES set by the caller is replaced (with a
   notice unless --quiet); use --cuda-env=false to keep it.

OPTIONS:
   --gpu value, -g value                 GPU to lock: 0, a set (0,2 or 0-3) whose first free GPU is taken, or any (alias all) (default: 0) [$GPULOCK_GPU]
   --name value                          service name shown to others (default: the command's base name) [$GPULOCK_NAME]
   --timeout value, -w value             give up waiting after this long (a number and a unit: 90s, 5m); 0 waits forever (default: 0 (wait forever)) [$GPULOCK_TIMEOUT]
   --nonblock, -n                        do not wait: fail at once if the GPU is held or others are in line (default: false) [$GPULOCK_NONBLOCK]
   --conflict-exit-code value, -E value  exit code when the lock could not be had (--nonblock, --timeout); 75 is EX_TEMPFAIL (default: 75) [$GPULOCK_CONFLICT_EXIT_CODE]
   --close, -o                           do not pass the lock to COMMAND: it is freed when COMMAND exits, even if its children live on (flock -o) (default: false) [$GPULOCK_CLOSE]
   --cuda-env                            set CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER=PCI_BUS_ID for COMMAND (default: true) [$GPULOCK_CUDA_ENV]
   --show-command                        show others COMMAND's whole command line (status, waiting lines); by default only its base name, since every user can read it (default: false) [$GPULOCK_SHOW_COMMAND]
   --quiet, -q                           print nothing of gpulock's own except errors (default: false) [$GPULOCK_QUIET]
   --fair                                take turns round-robin between clients that wait; --fair=false: plain arrival order (default: true) [$GPULOCK_FAIR]
   --priority value                      level in line: low, normal or high; a wait rises one level per 30s waited (default: "normal") [$GPULOCK_PRIORITY]
   --client value                        who this job is for, for fair turns between clients (default: uid:<your uid>) [$GPULOCK_CLIENT]
   --lock-dir value                      directory of the lock files; every program sharing a GPU must use the same one (default: /tmp) [$GPULOCK_DIR]
   --help, -h                            show help
`
