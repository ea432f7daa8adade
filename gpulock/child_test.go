//go:build unix

package gpulock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Cross-process tests re-execute the test binary with envRole naming what the
// child does. The child talks to the parent over stdin/stdout, one line each.
const (
	envRole  = "GPULOCK_TEST_ROLE"
	envDir   = "GPULOCK_TEST_DIR"
	envGPU   = "GPULOCK_TEST_GPU"
	envLog   = "GPULOCK_TEST_LOG"
	envHold  = "GPULOCK_TEST_HOLD"
	envCount = "GPULOCK_TEST_COUNT"
	envName  = "GPULOCK_TEST_NAME"
	envOcc   = "GPULOCK_TEST_OCC"
	// envTurn is "<client>/<priority>" for the child's Lock, if set.
	envTurn = "GPULOCK_TEST_TURN"

	// eventTimeout bounds every wait for an event in these tests.
	eventTimeout = 20 * time.Second
	// pollEvery is how often a condition is checked while waiting for it.
	pollEvery = 5 * time.Millisecond
)

func runChildRole(role string) int {
	gpu, _ := strconv.Atoi(os.Getenv(envGPU))
	opts := []Option{WithDir(os.Getenv(envDir)), WithService(os.Getenv(envName))}
	if client, level, ok := strings.Cut(os.Getenv(envTurn), "/"); ok {
		p, err := ParsePriority(level)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		opts = append(opts, WithClient(client), WithPriority(p))
	}
	l, err := New(gpu, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hold, _ := time.ParseDuration(os.Getenv(envHold))
	count, _ := strconv.Atoi(os.Getenv(envCount))
	switch role {
	case "hold": // acquire, say "held", release when stdin closes
		h, err := l.Acquire(context.Background())
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("held")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = h.Release()
		return 0
	case "once": // log "<name> start", say "waiting", acquire, log the name, release
		appendLog(os.Getenv(envName) + " start")
		fmt.Println("waiting")
		h, err := l.Acquire(context.Background())
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		appendLog(os.Getenv(envName))
		time.Sleep(hold) // the work
		_ = h.Release()
		return 0
	case "loop": // count turns: acquire, log, work, release
		loop(l, 1, count, hold)
		return 0
	case "busy": // 20 goroutines taking turns
		loop(l, 20, count, hold)
		return 0
	case "try": // say "got" or "busy"
		h, err := l.TryAcquire()
		switch {
		case err == nil:
			fmt.Println("got")
			_ = h.Release()
		case errors.Is(err, ErrBusy):
			fmt.Println("busy")
		default:
			fmt.Println("error", err)
		}
		return 0
	case "killable":
		return killable(l)
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

// loop runs n goroutines that each take count turns (forever if count is 0).
func loop(l *Lock, n, count int, hold time.Duration) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for i := 0; count == 0 || i < count; i++ {
				h, err := l.Acquire(context.Background())
				if err != nil {
					fmt.Println("error", err)
					return
				}
				appendLog(os.Getenv(envName))
				time.Sleep(hold)
				_ = h.Release()
			}
		})
	}
	wg.Wait()
}

// killable takes turns forever and checks that nobody else is inside. The
// occupancy file is flocked by whoever holds the GPU lock; finding it held
// means two holders, unless the other was killed a moment ago and the
// kernel is still closing its descriptors (in any order). The log line names
// the other holder, as the kernel's lock table gives it, and the parent
// excuses only processes it killed.
func killable(l *Lock) int {
	occ, err := os.OpenFile(os.Getenv(envOcc), os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		h, err := l.Acquire(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := syscall.Flock(int(occ.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			appendLog("suspect " + flockHolder(occ))
			_ = syscall.Flock(int(occ.Fd()), syscall.LOCK_EX)
		}
		appendLog("turn")
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond) // the work
		_ = syscall.Flock(int(occ.Fd()), syscall.LOCK_UN)
		_ = h.Release()
	}
}

// flockHolder returns the pid that holds a flock on f according to
// /proc/locks, or "gone" if nobody does by now.
func flockHolder(f *os.File) string {
	fi, err := f.Stat()
	if err != nil {
		return "gone"
	}
	ino := ":" + strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)
	b, _ := os.ReadFile("/proc/locks")
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) >= 6 && fields[1] == "FLOCK" && strings.HasSuffix(fields[5], ino) {
			return fields[4]
		}
	}
	return "gone"
}

// appendLog appends one line to the shared log; O_APPEND writes of one line
// do not interleave.
func appendLog(line string) {
	f, err := os.OpenFile(os.Getenv(envLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	_, _ = fmt.Fprintf(f, "%d %s\n", time.Now().UnixNano(), line)
}

// child is a helper process started by a test.
type child struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error
}

// startChild re-executes the test binary in role with env added.
func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(childBaseEnv(), envRole+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(c.kill)
	return c
}

// expect waits for the child's next line and checks it.
func (c *child) expect(want string) {
	c.t.Helper()
	select {
	case got, ok := <-c.lines:
		require.True(c.t, ok, "child exited before saying %q", want)
		require.Equal(c.t, want, got)
	case <-time.After(eventTimeout):
		c.t.Fatalf("child did not say %q within %v", want, eventTimeout)
	}
}

// finish closes the child's stdin (a "hold" child releases) and waits for it to exit.
func (c *child) finish() {
	c.t.Helper()
	c.stdin.Close()
	c.wait()
}

func (c *child) wait() {
	c.t.Helper()
	for range c.lines {
	}
	select {
	case err := <-c.done:
		require.NoError(c.t, err)
		c.done <- err
	case <-time.After(eventTimeout):
		c.t.Fatalf("child did not exit within %v", eventTimeout)
	}
}

// kill stops the child at once and reaps it.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	for range c.lines {
	}
	<-c.done
	c.done <- nil
}

// childBaseEnv is the environment every child starts from. A race-enabled
// binary waits a second at exit unless told not to.
func childBaseEnv() []string {
	return append(os.Environ(), "GORACE=atexit_sleep_ms=0")
}

// childEnv is the environment of a child working on GPU gpu in dir.
func childEnv(dir string, gpu int, name, log string) []string {
	return []string{envDir + "=" + dir, envGPU + "=" + strconv.Itoa(gpu), envName + "=" + name, envLog + "=" + log}
}

// logLines returns the lines of a log written by appendLog, in order, without times.
type logEntry struct {
	at   int64
	text string
}

func readLog(t *testing.T, path string) []logEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []logEntry
	for line := range strings.Lines(string(b)) {
		at, text, ok := strings.Cut(strings.TrimSpace(line), " ")
		require.True(t, ok, "bad log line %q", line)
		n, err := strconv.ParseInt(at, 10, 64)
		require.NoError(t, err)
		out = append(out, logEntry{at: n, text: text})
	}
	return out
}

// waitFor polls cond until it holds or eventTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, eventTimeout, pollEvery, "waiting for %s", what)
}

// waitersOf returns the number of processes in line for l.
func waitersOf(t *testing.T, l *Lock) int {
	t.Helper()
	st, err := l.Status()
	require.NoError(t, err)
	return len(st.Waiters)
}
