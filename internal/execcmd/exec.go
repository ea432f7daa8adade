package execcmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Environment variables that `gpulock exec` sets for its child.
const (
	// heldGPUEnv lists the GPUs held by enclosing `gpulock exec`s, comma
	// separated, innermost last. It is for the command to read: the
	// nested-exec guard asks the kernel who holds the lock (see nested.go).
	heldGPUEnv     = "GPULOCK_HELD_GPU"
	CUDAVisibleEnv = "CUDA_VISIBLE_DEVICES"
	CUDAOrderEnv   = "CUDA_DEVICE_ORDER"
)

// forwardedSignals are passed on to the child's process group, once each.
// While gpulock still waits for the lock, they end the wait instead.
var forwardedSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP,
	syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
}

const (
	FlagName             = "name"
	flagTimeout          = "timeout"
	flagNonblock         = "nonblock"
	flagConflictExitCode = "conflict-exit-code"
	flagClose            = "close"
	flagCUDAEnv          = "cuda-env"
	flagShowCommand      = "show-command"
)

// The texts of exec's help.
const (
	ExecUsage       = "run a command while holding a GPU lock"
	ExecUsageText   = "gpulock exec [flags] [--] COMMAND [ARGS...]"
	ExecDescription = `Waits in line for the GPU, runs COMMAND holding its lock, and returns
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
notice unless --quiet); use --cuda-env=false to keep it.`
)

// ExecFlagSpecs are exec's flags, in the order its help lists them
// (--lock-dir aside, which every command gets).
func ExecFlagSpecs() []FlagSpec {
	return append([]FlagSpec{
		{Name: FlagGPU, Aliases: []string{"g"}, Kind: ValueKind, EnvVars: EnvVar(FlagGPU),
			Usage:    "GPU to lock: 0, a set (0,2 or 0-3) whose first free GPU is taken, or any (alias all)",
			NewValue: func() FlagValue { return &gpuSetValue{s: "0"} }},
		{Name: FlagName, Kind: StringKind, EnvVars: EnvVar(FlagName), DefaultText: "the command's base name",
			Usage: "service name shown to others"},
		{Name: flagTimeout, Aliases: []string{"w"}, Kind: ValueKind, EnvVars: EnvVar(flagTimeout),
			Usage:       "give up waiting after this long (a number and a unit: 90s, 5m); 0 waits forever",
			NewValue:    func() FlagValue { return &DurationValue{} },
			DefaultText: "0 (wait forever)"},
		{Name: flagNonblock, Aliases: []string{"n"}, Kind: BoolKind, EnvVars: EnvVar(flagNonblock),
			Usage: "do not wait: fail at once if the GPU is held or others are in line"},
		{Name: flagConflictExitCode, Aliases: []string{"E"}, Kind: IntKind, Int: ExitTempFail,
			EnvVars: EnvVar(flagConflictExitCode),
			Usage:   "exit code when the lock could not be had (--nonblock, --timeout); 75 is EX_TEMPFAIL"},
		{Name: flagClose, Aliases: []string{"o"}, Kind: BoolKind, EnvVars: EnvVar(flagClose),
			Usage: "do not pass the lock to COMMAND: it is freed when COMMAND exits, even if its children live on (flock -o)"},
		{Name: flagCUDAEnv, Kind: BoolKind, Bool: true, EnvVars: EnvVar(flagCUDAEnv),
			Usage: "set CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER=PCI_BUS_ID for COMMAND"},
		{Name: flagShowCommand, Kind: BoolKind, EnvVars: EnvVar(flagShowCommand),
			Usage: "show others COMMAND's whole command line (status, waiting lines); by default only its base name, since every user can read it"},
		QuietSpec(),
	}, execTurnSpecs()...)
}

// FlagReader reads a parsed command line's flags by name: urfave/cli's
// *cli.Context is one, and so is ParseArgs's *ParsedArgs.
type FlagReader interface {
	String(name string) string
	Bool(name string) bool
	Int(name string) int
	Generic(name string) any
}

// execOptions is what `gpulock exec` was asked to do.
type execOptions struct {
	dir          string
	gpus         []int
	name         string
	timeout      time.Duration
	nonblock     bool
	conflictCode int
	close        bool
	cudaEnv      bool
	quiet        bool
	showCommand  bool
	args         []string
	turns        execTurns // fair turns and priority
}

const execHelp = "gpulock exec --help"

// parseExecOptions reads exec's flags from r, with the lock directory dir
// and the arguments after the flags, args.
func parseExecOptions(r FlagReader, dir string, args []string) (execOptions, error) {
	o := execOptions{
		dir:          dir,
		name:         r.String(FlagName),
		timeout:      DurationOf(r, flagTimeout),
		nonblock:     r.Bool(flagNonblock),
		conflictCode: r.Int(flagConflictExitCode),
		close:        r.Bool(flagClose),
		cudaEnv:      r.Bool(flagCUDAEnv),
		quiet:        r.Bool(FlagQuiet),
		showCommand:  r.Bool(flagShowCommand),
		args:         args,
	}
	if len(o.args) == 0 || o.args[0] == "" {
		return o, UsageError(execHelp, "missing COMMAND to run")
	}
	if o.timeout < 0 {
		return o, UsageError(execHelp, "--timeout %s is negative", o.timeout)
	}
	if o.conflictCode < 0 || o.conflictCode > 255 {
		return o, UsageError(execHelp, "--conflict-exit-code %d is out of range 0-255", o.conflictCode)
	}
	gpus, err := gpulock.ParseGPUSet(gpuSetOf(r, FlagGPU))
	if errors.Is(err, gpulock.ErrNoGPUs) {
		return o, &ExitError{code: ExitUnavailable, msg: LibText(err), err: err}
	}
	if err != nil {
		return o, UsageError(execHelp, "--gpu: %s", LibText(err))
	}
	o.gpus = gpus
	if o.turns, err = readExecTurns(r); err != nil {
		return o, err
	}
	if o.name == "" {
		o.name = filepath.Base(o.args[0])
	}
	return o, nil
}

// Exec runs exec with the flags r, the lock directory dir and the
// arguments after the flags, args (COMMAND and its arguments). It returns
// nil, or an *ExitError for any other exit code.
func (a *Runner) Exec(ctx context.Context, r FlagReader, dir string, args []string) error {
	o, err := parseExecOptions(r, dir, args)
	if err != nil {
		return err
	}
	return a.execute(ctx, o)
}

// execute finds the command, waits for the lock, runs the command holding
// it and returns the command's exit status as an *ExitError.
func (a *Runner) execute(ctx context.Context, o execOptions) error {
	fw := startForwarding() // see forwarding.go
	defer fw.stop(a.ExitAfterRun)
	path, err := LookPath(o.args[0])
	if err != nil {
		return err
	}
	if err := CheckLockDir(o.dir); err != nil {
		return err
	}
	locks := make([]*gpulock.Lock, len(o.gpus))
	for i, g := range o.gpus {
		locks[i], err = gpulock.New(g, append([]gpulock.Option{gpulock.WithDir(o.dir), gpulock.WithService(o.name), gpulock.WithCommand(o.shownCommand())}, o.turns.options()...)...)
		if err != nil {
			return UsageError(execHelp, "%s", LibText(err))
		}
	}

	warnIfServed(locks, a.notice(o))

	h, err := a.acquire(ctx, o, locks, fw)
	if err != nil {
		return err
	}
	if err := a.waitDeadHolder(ctx, o, h, fw); err != nil {
		return err
	}
	return a.runChild(o, path, h, fw)
}

// LookPath finds the command before we wait in line for it.
func LookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	switch {
	case err == nil:
		return path, nil
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, exec.ErrDot), errors.Is(err, fs.ErrNotExist):
		return "", &ExitError{code: ExitNotFound, msg: name + ": command not found", err: err}
	default:
		return "", &ExitError{code: ExitCannotExec, msg: name + ": cannot execute: " + causeText(err), err: err}
	}
}

// CheckLockDir gives a clear error for a lock directory that is missing or
// not a directory.
func CheckLockDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return &ExitError{code: lockErrorCode(err), msg: "lock directory " + dir + ": " + causeText(err) + permHint(err), err: err}
	}
	if !fi.IsDir() {
		return Exitf(ExitNoInput, "lock directory %s is not a directory", dir)
	}
	return nil
}

// causeText is the innermost message of err: "permission denied" rather
// than the whole path error.
func causeText(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// SignalCause ends a wait because a signal arrived.
type SignalCause struct{ Sig syscall.Signal }

// Error says which signal.
func (s SignalCause) Error() string { return "interrupted by " + signalName(s.Sig) }

// acquire takes one lock of locks: TryAcquire only with --nonblock, else
// waiting in line, until the --timeout or a signal ends the wait.
func (a *Runner) acquire(ctx context.Context, o execOptions, locks []*gpulock.Lock, fw *forwarding) (*gpulock.Handle, error) {
	for _, l := range locks {
		h, err := l.TryAcquire()
		if err == nil {
			return h, nil
		}
		if !errors.Is(err, gpulock.ErrBusy) {
			return nil, LockError(err)
		}
	}
	locks, err := notOurs(locks)
	if err != nil {
		return nil, err
	}
	noun := gpuNoun(gpusOf(locks))
	if o.nonblock {
		return nil, Exitf(o.conflictCode, "%s busy: %s", strings.TrimPrefix(noun, "any of ")+isAre(len(locks)), describeLocks(locks, describeBusy))
	}

	sigs := fw.signals()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if o.timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, o.timeout)
		defer stop()
	}
	watchDone := make(chan struct{})
	watchEnded := make(chan struct{})
	go func() {
		defer close(watchEnded)
		select {
		case s := <-sigs:
			cancel(SignalCause{s.(syscall.Signal)})
		case <-watchDone:
		}
	}()
	fb := a.startFeedback(o, locks)
	start := time.Now()
	h, err := gpulock.AcquireAny(ctx, locks)
	close(watchDone)
	<-watchEnded
	fb.stop()

	var sc SignalCause
	if errors.As(context.Cause(ctx), &sc) {
		if h != nil {
			_ = h.Release()
		}
		return nil, Exitf(ExitSignalBase+int(sc.Sig), "%s while waiting for %s", sc, noun)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, Exitf(o.conflictCode, "timed out after %s waiting for %s: %s", o.timeout, noun, describeLocks(locks, describeBusy))
		}
		return nil, LockError(err)
	}
	fb.acquired(h, time.Since(start))
	return h, nil
}

func isAre(n int) string {
	if n == 1 {
		return " is"
	}
	return " are"
}

// runChild runs the command holding h and returns its exit status.
func (a *Runner) runChild(o execOptions, path string, h *gpulock.Handle, fw *forwarding) error {
	env := childEnv(os.Environ(), h.GPU(), o.cudaEnv, a.notice(o))
	var extra []*os.File
	if !o.close {
		extra = []*os.File{h.File()} // fd 3: the child shares the lock
	}
	ttyFD := FDOf(a.Stdin)
	foreground := ttyFD >= 0 && inForeground(ttyFD)

	// The parent-death signal belongs to the thread that forks: this
	// goroutine keeps its thread until the child has exited. Starting the
	// child here, not from a goroutine of its own, spares a thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// The child joins the group guard's process group (see guard.go).
	guard := StartGroupGuard()
	sigs := fw.signals() // from the child's start on, signals are passed on
	child, err := spawnChild(path, o.args, env, a.Stdin, a.Stdout, a.Stderr, extra, ChildProcAttr(foreground, guard.PGID()))
	if err != nil && guard != nil {
		// The guard may have died before the child could join its
		// group: run the child in a group of its own instead.
		guard.Release()
		guard = nil
		child, err = spawnChild(path, o.args, env, a.Stdin, a.Stdout, a.Stderr, extra, ChildProcAttr(foreground, 0))
	}
	if err != nil {
		_ = h.Release()
		return StartError(o.args[0], err)
	}
	h.SetChildPID(child.pid)
	pgid := child.pid
	if guard != nil {
		pgid = guard.PGID()
	}

	// Signals are passed on by a goroutine while this one waits for the
	// child in wait4(2): a locked goroutine that parked instead would
	// hand its thread over twice.
	exited := make(chan struct{})
	forwarderDone := make(chan struct{})
	go func() {
		defer close(forwarderDone)
		for {
			select {
			case s := <-sigs:
				guard.WaitReady()                           // until the guard ignores signals, this one would kill it
				_ = syscall.Kill(-pgid, s.(syscall.Signal)) // the child's process group
			case <-exited:
				return
			}
		}
	}()
	end := child.wait()
	close(exited)
	<-forwarderDone
	guard.Release()
	if foreground {
		takeForeground(ttyFD)
	}
	if o.close {
		_ = h.Release()
	} else {
		_ = h.Disown() // processes that inherited the lock keep it
	}
	return exitStatusOf(end)
}

// CloneCmd is a fresh copy of a command that failed to start, to try again.
func CloneCmd(c *exec.Cmd) *exec.Cmd {
	return &exec.Cmd{
		Path: c.Path, Args: c.Args, Env: c.Env, Dir: c.Dir,
		Stdin: c.Stdin, Stdout: c.Stdout, Stderr: c.Stderr,
		ExtraFiles: c.ExtraFiles,
	}
}

// StartError maps a failure to start the command to 126, 127 or 71.
func StartError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &ExitError{code: ExitNotFound, msg: name + ": command not found: " + causeText(err), err: err}
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR):
		return &ExitError{code: ExitCannotExec, msg: name + ": cannot execute: " + causeText(err), err: err}
	default:
		return &ExitError{code: ExitOSErr, msg: name + ": cannot start: " + causeText(err), err: err}
	}
}

// ExitStatus turns the command's end into gpulock's exit code: its own
// code, or 128+N when signal N killed it.
func ExitStatus(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return &ExitError{code: ExitSoftware, msg: "waiting for the command: " + err.Error(), err: err}
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return silentExit(ExitSignalBase + int(ws.Signal()))
	}
	return silentExit(ee.ExitCode())
}

// childEnv is env with the variables that tell the child which GPU it
// holds. A CUDA_VISIBLE_DEVICES already set is replaced, and note is told.
func childEnv(env []string, gpu int, cudaEnv bool, note func(string)) []string {
	n := strconv.Itoa(gpu)
	set := map[string]string{}
	held := n
	if prev, ok := LookupEnv(env, heldGPUEnv); ok && prev != "" {
		held = prev + "," + n
	}
	set[heldGPUEnv] = held
	if cudaEnv {
		if prev, ok := LookupEnv(env, CUDAVisibleEnv); ok && prev != n {
			note(fmt.Sprintf("replacing %s=%s with %s, the GPU held (--gpu numbers are nvidia-smi's; --cuda-env=false keeps yours)", CUDAVisibleEnv, prev, n))
		}
		set[CUDAVisibleEnv] = n
		set[CUDAOrderEnv] = "PCI_BUS_ID"
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range []string{heldGPUEnv, CUDAVisibleEnv, CUDAOrderEnv} {
		if v, ok := set[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// LookupEnv is the value of key in env (the last one set), and whether it
// is set.
func LookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// warnIfServed says so when a gpulock shim serves one of the GPUs: the
// command then takes turns with the shim's jobs, which is right for a batch
// job, but a web UI run this way would hold the GPU for its whole life.
func warnIfServed(locks []*gpulock.Lock, notice func(string)) {
	for _, l := range locks {
		if l.Served() {
			notice(fmt.Sprintf("a gpulock shim serves GPU %d: this command takes turns with its jobs; "+
				"do not run a web UI this way, it would hold GPU %d for its whole life", l.GPU(), l.GPU()))
		}
	}
}

// notice returns a function that prints a one-line notice unless --quiet.
func (a *Runner) notice(o execOptions) func(string) {
	return func(msg string) {
		if !o.quiet {
			fmt.Fprintf(a.Stderr, "gpulock: %s\n", msg)
		}
	}
}

// shownCommand is the command text others see in the lock directory: the
// command's base name, or its whole line with --show-command.
func (o execOptions) shownCommand() string {
	if o.showCommand {
		return CommandLine(o.args)
	}
	return filepath.Base(o.args[0])
}

// CommandLine renders args for others to read, quoting where needed.
func CommandLine(args []string) string {
	q := make([]string, len(args))
	for i, s := range args {
		if s == "" || strings.ContainsAny(s, " \t\n\"'\\$`") {
			s = strconv.Quote(s)
		}
		q[i] = s
	}
	return strings.Join(q, " ")
}

// signalName names the signals gpulock handles.
func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	}
	return "signal " + strconv.Itoa(int(s))
}
