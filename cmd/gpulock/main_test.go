package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/require"
)

// Timing constants of the end-to-end tests. Nothing waits a fixed time:
// these bound waits for events.
const (
	eventTimeout = 15 * time.Second
	pollEvery    = 10 * time.Millisecond
)

// binPath is the gpulock binary built once for every test.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gpulock-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Readable by all, for the test that runs it as user nobody.
	_ = os.Chmod(dir, 0o755)
	binPath = filepath.Join(dir, "gpulock")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gpulock:", err)
		return 1
	}
	return m.Run()
}

// need returns the path of a tool the test needs; without it the test is
// skipped, or fails where $CI is set.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed: %v", tool, err)
		}
		t.Skipf("%s not found: %v", tool, err)
	}
	return p
}

// env is a test's environment: a fresh lock directory and nothing of the
// caller's GPULOCK_* or CUDA_* variables.
type env struct {
	t    *testing.T
	dir  string
	vars []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GPULOCK_") && !strings.HasPrefix(kv, "CUDA_") {
			e.vars = append(e.vars, kv)
		}
	}
	e.vars = append(e.vars, "GPULOCK_DIR="+e.dir)
	return e
}

// with returns a copy of e with more environment variables.
func (e *env) with(kv ...string) *env {
	c := *e
	c.vars = append(append([]string(nil), e.vars...), kv...)
	return &c
}

func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(binPath, args...)
	c.Env = e.vars
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as a job of its own
	c.WaitDelay = eventTimeout                          // never hang on a pipe a grandchild keeps
	return c
}

// run runs gpulock to the end and returns its stdout, stderr and exit code.
func (e *env) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		e.t.Fatalf("running gpulock %v: %v", args, err)
	}
	return out.String(), errb.String(), c.ProcessState.ExitCode()
}

// proc is a gpulock running in the background, its stdout read line by line.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	done   chan struct{}
}

// start starts gpulock in the background.
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	c := e.cmd(args...)
	out, err := c.StdoutPipe()
	require.NoError(e.t, err)
	p := &proc{t: e.t, cmd: c, lines: make(chan string, 100), stderr: &syncBuffer{}, done: make(chan struct{})}
	c.Stderr = p.stderr
	require.NoError(e.t, c.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		_ = c.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

// line waits for the next line of stdout.
func (p *proc) line() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("stdout closed; stderr: %s", p.stderr.String())
		}
		return l
	case <-time.After(eventTimeout):
		p.t.Fatalf("no line on stdout after %s; stderr: %s", eventTimeout, p.stderr.String())
	}
	return ""
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(eventTimeout):
		p.t.Fatalf("still running after %s; stderr: %s", eventTimeout, p.stderr.String())
	}
	return -1
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls cond until it holds or eventTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", eventTimeout, what)
		}
		time.Sleep(pollEvery)
	}
}

// lockOf returns the library's view of GPU gpu's lock in e's directory.
func (e *env) lockOf(gpu int) *gpulock.Lock {
	e.t.Helper()
	l, err := gpulock.New(gpu, gpulock.WithDir(e.dir), gpulock.WithService("test"))
	require.NoError(e.t, err)
	return l
}

// status reads GPU gpu's lock state.
func (e *env) status(gpu int) gpulock.Status {
	e.t.Helper()
	st, err := e.lockOf(gpu).Status()
	require.NoError(e.t, err)
	return st
}

// waitWaiters waits until n processes are in line for GPU gpu.
func (e *env) waitWaiters(gpu, n int) {
	e.t.Helper()
	eventually(e.t, fmt.Sprintf("%d waiters on GPU %d", n, gpu), func() bool { return len(e.status(gpu).Waiters) == n })
}

// hold starts `gpulock exec` holding GPU gpu as service name until the
// test ends; it returns once the lock is held.
func (e *env) hold(gpu int, name string) *proc {
	e.t.Helper()
	p := e.start("exec", "--gpu", fmt.Sprint(gpu), "--name", name, "--", "sh", "-c", "echo ready; exec sleep 600")
	require.Equal(e.t, "ready", p.line())
	return p
}

// flockHold holds GPU gpu's lock file with util-linux flock(1).
func (e *env) flockHold(gpu int) *proc {
	e.t.Helper()
	flock := need(e.t, "flock")
	c := exec.Command(flock, filepath.Join(e.dir, fmt.Sprintf("gpu%d.lock", gpu)), "sh", "-c", "echo ready; exec sleep 600")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := c.StdoutPipe()
	require.NoError(e.t, err)
	require.NoError(e.t, c.Start())
	p := &proc{t: e.t, cmd: c, lines: make(chan string, 10), stderr: &syncBuffer{}, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() { _ = c.Wait(); close(p.done) }()
	e.t.Cleanup(func() { _ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL); <-p.done })
	require.Equal(e.t, "ready", p.line())
	return p
}

// oneLine checks that s is one line and returns it without the newline.
func requireOneLine(t *testing.T, s string) string {
	t.Helper()
	s = strings.TrimSuffix(s, "\n")
	require.NotContains(t, s, "\n", "want one line")
	require.NotContains(t, s, "panic")
	return s
}
