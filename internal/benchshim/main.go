// Command benchshim measures gpulock shim on loopback: passthrough
// throughput and latency at saturation against a plain ReverseProxy and
// nginx (passthrough, with wrk), passthrough latency at a fixed rate below
// saturation (latency), the memory and CPU of 10,000 GPU requests waiting in one
// shim (waiting), and the gap between one service's job ending and
// another's starting on a simulated GPU (gap). Results go to
// docs/BENCHMARKS.md.
//
//	go run ./internal/benchshim passthrough [-runs 3] [-d 10s]
//	go run ./internal/benchshim latency [-rate 2000] [-runs 3]
//	go run ./internal/benchshim waiting [-n 10000] [-runs 3]
//	go run ./internal/benchshim gap [-jobs 60]
//
// It builds ./cmd/gpulock into a temporary directory (or uses -gpulock),
// starts every server it needs as a child process on 127.0.0.1, and stops
// all of them before it exits, also on Ctrl-C. The servers that are not
// gpulock (the tiny backend, the plain proxies, the bare waiting server) are
// this program re-executed with the hidden first argument "child".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// startTimeout bounds the wait for a child to accept connections.
	startTimeout = 15 * time.Second
	// stopTimeout is how long a child gets after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := runChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchshim child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchshim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("say which: passthrough, latency, waiting or gap")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	gpulockBin := fs.String("gpulock", "", "gpulock binary (default: build ./cmd/gpulock)")
	tmp, err := os.MkdirTemp("", "benchshim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{ctx: ctx, tmp: tmp}
	switch args[0] {
	case "passthrough":
		o := passthroughOpts{}
		fs.IntVar(&o.runs, "runs", 3, "wrk runs per configuration (the median is reported)")
		fs.DurationVar(&o.duration, "d", 10*time.Second, "wrk duration per run")
		fs.IntVar(&o.threads, "t", 2, "wrk threads")
		fs.IntVar(&o.conns, "c", 32, "wrk connections")
		_ = fs.Parse(args[1:])
		if err := b.setup(*gpulockBin); err != nil {
			return err
		}
		defer b.stopAll()
		return b.passthrough(o)
	case "latency":
		o := latencyOpts{}
		fs.IntVar(&o.rate, "rate", 2000, "requests/s over all connections")
		fs.IntVar(&o.conns, "c", 32, "connections")
		fs.DurationVar(&o.duration, "d", 10*time.Second, "duration per run")
		fs.IntVar(&o.runs, "runs", 3, "runs per target (the median is reported)")
		_ = fs.Parse(args[1:])
		if err := b.setup(*gpulockBin); err != nil {
			return err
		}
		defer b.stopAll()
		return b.latency(o)
	case "waiting":
		o := waitingOpts{}
		fs.IntVar(&o.n, "n", 10000, "GPU requests waiting at once")
		fs.IntVar(&o.body, "body", 2048, "bytes of each request's body")
		fs.IntVar(&o.runs, "runs", 3, "runs per server (the median is reported)")
		fs.DurationVar(&o.window, "window", 5*time.Second, "CPU measuring window while they wait")
		_ = fs.Parse(args[1:])
		if err := b.setup(*gpulockBin); err != nil {
			return err
		}
		defer b.stopAll()
		return b.waiting(o)
	case "gap":
		o := gapOpts{}
		fs.IntVar(&o.jobs, "jobs", 60, "jobs per service")
		fs.IntVar(&o.clients, "clients", 3, "concurrent clients per service")
		fs.IntVar(&o.steps, "steps", 10, "sampling steps per job")
		fs.DurationVar(&o.step, "step", 10*time.Millisecond, "time of one simulated step")
		fs.DurationVar(&o.poll, "poll", 500*time.Microsecond, "how often the simulated GPU's state is read")
		fs.DurationVar(&o.limit, "limit", 3*time.Minute, "bound on the whole load")
		fs.StringVar(&o.simDir, "sim-dir", "", "directory for the simulated GPU's state (default: the bench's temporary directory; /dev/shm keeps file-system stalls of the instrument out of the gaps)")
		fs.StringVar(&o.lockDir, "lock-dir", "", "directory for the lock files (default: the bench's temporary directory)")
		_ = fs.Parse(args[1:])
		if err := b.setup(*gpulockBin); err != nil {
			return err
		}
		defer b.stopAll()
		return b.gap(o)
	}
	return fmt.Errorf("unknown benchmark %q: want passthrough, latency, waiting or gap", args[0])
}

// bench holds what a benchmark started, to stop it at the end.
type bench struct {
	ctx     context.Context
	tmp     string
	gpulock string // the gpulock binary
	self    string // this program, for child roles
	procs   []*proc
}

// setup finds or builds the gpulock binary.
func (b *bench) setup(bin string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b.self = self
	if bin != "" {
		b.gpulock = bin
		return nil
	}
	b.gpulock = filepath.Join(b.tmp, "gpulock")
	cmd := exec.CommandContext(b.ctx, "go", "build", "-o", b.gpulock, "github.com/gpulock/gpulock/cmd/gpulock")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building gpulock: %w", err)
	}
	return nil
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// start starts a child whose stderr goes to tmp/<name>.log and, once it
// accepts connections on addr, returns it. It is stopped by stopAll.
func (b *bench) start(name, addr string, argv ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(b.tmp, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	b.procs = append(b.procs, p)
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited at start: %s", name, b.logTail(name))
		case <-b.ctx.Done():
			return nil, b.ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not listen on %s within %s", name, addr, startTimeout)
		}
	}
}

// logTail returns the end of a child's log.
func (b *bench) logTail(name string) string {
	data, _ := os.ReadFile(filepath.Join(b.tmp, name+".log"))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return strings.TrimSpace(string(data))
}

// stop ends p: SIGTERM, then SIGKILL after stopTimeout.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stopAll stops every child started, latest first.
func (b *bench) stopAll() {
	for i := len(b.procs) - 1; i >= 0; i-- {
		b.procs[i].stop()
	}
	b.procs = nil
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
