package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/internal/shim"
	"github.com/urfave/cli/v2"
)

// `gpulock shim [flags] -- COMMAND...` starts the backend as the shim's
// child, as people start the UIs (`python main.py`, `./webui.sh`):
//
//   - the backend's output is the shim's, its stdin /dev/null;
//   - it runs in its own process group, with CUDA_VISIBLE_DEVICES=--gpu
//     and CUDA_DEVICE_ORDER=PCI_BUS_ID unless CUDA_VISIBLE_DEVICES is set;
//   - it never holds the lock (the shim's lock files are close-on-exec);
//   - the shim serves once the backend answers HTTP at --upstream (any
//     answer), bounded by --ready-timeout; until then connections wait in
//     the listen backlog (the port is bound before the backend starts);
//   - the backend's exit ends the shim (gracefully: the line gets 503) with
//     the backend's exit status;
//   - SIGTERM, SIGINT or SIGHUP stop the shim gracefully (stop accepting,
//     the line gets 503, running jobs get --drain-timeout), then go to the
//     backend's process group; after --backend-stop-timeout it is killed;
//   - the backend dies with the shim: the parent-death signal (on a locked
//     OS thread) kills the backend itself if the shim is SIGKILLed, the
//     group guard (see internal/execcmd/guard.go) its whole process group.

// Flags and defaults of the shim's backend child.
const (
	flagReadyTimeout       = "ready-timeout"
	flagBackendStopTimeout = "backend-stop-timeout"
	// defaultReadyTimeout bounds the backend's start: the UIs load models
	// and may install packages on their first start.
	defaultReadyTimeout = 10 * time.Minute
	// defaultBackendStopTimeout bounds the backend's own shutdown.
	defaultBackendStopTimeout = 30 * time.Second
	// readyPoll is how often the backend is asked whether it answers.
	readyPoll = 250 * time.Millisecond
	// readyAsk bounds each of those requests.
	readyAsk = 2 * time.Second
)

// shimChildFlags are the shim's flags for a backend started as its child.
func shimChildFlags() []cli.Flag {
	return []cli.Flag{
		durationFlag(flagReadyTimeout, "with -- COMMAND: how long the backend may take to answer HTTP before the shim gives up", defaultReadyTimeout),
		durationFlag(flagBackendStopTimeout, "with -- COMMAND: how long the backend may take to exit after the signal, before SIGKILL", defaultBackendStopTimeout),
	}
}

// backendChild is a running backend started by the shim.
type backendChild struct {
	cmd    *exec.Cmd
	pid    int
	pgid   int           // the group guard's group, which the backend joined, or its own
	exited chan struct{} // closed once it has exited; then err is set
	err    error
	guard  *groupGuard
}

// startBackend starts args as the shim's backend.
func (a *App) startBackend(args []string, gpu int) (*backendChild, error) {
	path, err := lookPath(args[0])
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   args,
		Env:    backendEnv(os.Environ(), gpu),
		Stdout: a.stdout,
		Stderr: a.stderr,
	}
	// The backend joins the group guard's process group (see internal/execcmd/guard.go),
	// or, if the guard cannot start or died, a group of its own.
	guard := startGroupGuard()
	b, err := startBackendIn(cmd, guard.PGID())
	if err != nil && guard != nil {
		guard.Release()
		guard = nil
		cmd = cloneCmd(cmd)
		b, err = startBackendIn(cmd, 0)
	}
	if err != nil {
		return nil, startError(args[0], err)
	}
	b.guard, b.pgid = guard, guard.PGID()
	if guard == nil {
		b.pgid = b.pid
	}
	return b, nil
}

// startBackendIn starts cmd in process group pgid (0: its own).
func startBackendIn(cmd *exec.Cmd, pgid int) (*backendChild, error) {
	cmd.SysProcAttr = childProcAttr(false, pgid)
	b := &backendChild{cmd: cmd, exited: make(chan struct{})}
	// The parent-death signal belongs to the thread that forks: start the
	// backend from a thread that lives until it has exited.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		b.err = cmd.Wait()
		close(b.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	b.pid = cmd.Process.Pid
	return b, nil
}

// backendEnv is env with the backend's GPU: CUDA_VISIBLE_DEVICES=gpu and
// nvidia-smi's order, unless CUDA_VISIBLE_DEVICES is set already.
func backendEnv(env []string, gpu int) []string {
	if _, ok := lookupEnv(env, cudaVisibleEnv); ok {
		return env
	}
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if !strings.HasPrefix(kv, cudaOrderEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, cudaVisibleEnv+"="+strconv.Itoa(gpu), cudaOrderEnv+"=PCI_BUS_ID")
}

// stop sends sig to the backend's process group, waits up to grace for the
// backend to exit, then kills the group; the guard is told that the shim
// ends normally. It returns the backend's exit status.
func (b *backendChild) stop(sig syscall.Signal, grace time.Duration) error {
	select {
	case <-b.exited:
	default:
		b.guard.WaitReady() // until the guard ignores signals, this one would kill it
		_ = syscall.Kill(-b.pgid, sig)
		t := time.NewTimer(grace)
		select {
		case <-b.exited:
			t.Stop()
		case <-t.C:
			_ = syscall.Kill(-b.pgid, syscall.SIGKILL)
			<-b.exited
		}
	}
	// What the backend left in its group goes with it (the guard's rule).
	// The guard is told first that the shim ends normally, so that it
	// leaves the group and killGroup does not wait for it.
	b.guard.Release()
	killGroup(b.pgid, guardGrace)
	return b.err
}

// waitReady waits until the backend answers HTTP at upstream (any status),
// or ctx ends, or the backend exits.
func waitReady(ctx context.Context, upstream *url.URL, b *backendChild) error {
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:       readyAsk,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream.String(), nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			return nil
		}
		select {
		case <-b.exited:
			return errBackendExited
		default:
		}
		select {
		case <-ctx.Done():
			select {
			case <-b.exited: // what ended ctx, most likely
				return errBackendExited
			default:
				return ctx.Err()
			}
		case <-b.exited:
			return errBackendExited
		case <-t.C:
		}
	}
}

// errBackendExited says the backend exited before it answered.
var errBackendExited = errors.New("the backend exited before it answered")

// serveWithBackend runs the shim s on ln in front of the backend args
// started as its child (see the top of this file). It returns the
// backend's exit status.
func (a *App) serveWithBackend(c *cli.Context, cfg shim.Config, s *shim.Shim, ln net.Listener, args []string) error {
	if args[0] == "" {
		return usageError("gpulock shim --help", "the backend command after -- is empty")
	}
	for _, f := range []string{flagReadyTimeout, flagBackendStopTimeout} {
		if durationOf(c, f) < 0 {
			return usageError("gpulock shim --help", "--%s cannot be negative", f)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	b, err := a.startBackend(args, cfg.GPU)
	if err != nil {
		_ = ln.Close()
		return err
	}
	logger := cfg.Logger.With("backend_pid", b.pid)
	logger.Info("gpulock shim started the backend; waiting for it to answer", "command", commandLine(args),
		"upstream", cfg.Upstream.Redacted(), "ready_timeout", durationOf(c, flagReadyTimeout))

	// Whatever ends first ends the wait and the serving: a signal, the
	// backend's exit, or (for the wait) the ready timeout.
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	sig := make(chan syscall.Signal, 1) // the signal that ended it, if one did
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case s := <-sigs:
			sig <- s.(syscall.Signal)
			cancel()
		case <-b.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	stopTimeout := durationOf(c, flagBackendStopTimeout)
	finish := func() error { // after the serving: the backend goes too
		cancel()
		<-watched
		stopWith := syscall.SIGTERM
		select {
		case s := <-sig:
			stopWith = s
		default:
		}
		return b.stop(stopWith, stopTimeout)
	}

	readyCtx, readyCancel := context.WithTimeout(ctx, durationOf(c, flagReadyTimeout))
	err = waitReady(readyCtx, cfg.Upstream, b)
	readyCancel()
	if err != nil {
		_ = ln.Close()
		timedOut := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		status := finish()
		switch {
		case timedOut:
			return exitf(exitUnavailable, "the backend did not answer at %s within --%s %s; it was stopped",
				cfg.Upstream.Redacted(), flagReadyTimeout, durationOf(c, flagReadyTimeout))
		case errors.Is(err, errBackendExited):
			logger.Warn("the backend exited before it answered", "status", statusText(status))
		}
		return exitStatus(status)
	}
	logger.Info("gpulock shim serving", "listen", ln.Addr().String(), "upstream", cfg.Upstream.Redacted(),
		"gpu", cfg.GPU, "profile", cfg.Profile.Name, "lock", s.Lock().Path())
	serveErr := s.Serve(ctx, ln)
	select {
	case <-b.exited:
		logger.Warn("the backend exited; the shim stops", "status", statusText(b.err))
	default:
	}
	status := finish()
	if serveErr != nil {
		return exitf(exitSoftware, "shim stopped: %v", serveErr)
	}
	return exitStatus(status)
}

// statusText says how the backend ended, for the log.
func statusText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return fmt.Sprint(err)
}
