package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventTimeout bounds every wait for an event; nothing waits a fixed time.
const eventTimeout = 15 * time.Second

// smallBin is this package's binary, fullBin the gpulock binary, both built
// once for every test.
var smallBin, fullBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gpulock-exec-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	smallBin, fullBin = filepath.Join(dir, "gpulock-exec"), filepath.Join(dir, "gpulock")
	for bin, pkg := range map[string]string{smallBin: ".", fullBin: "../gpulock"} {
		build := exec.Command("go", "build", "-o", bin, pkg) // the default build, as go install does
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg+":", err)
			return 1
		}
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

// cleanEnv is this process's environment without GPULOCK_* and CUDA_*
// variables, and with GPULOCK_DIR=dir.
func cleanEnv(dir string) []string {
	var vars []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GPULOCK_") && !strings.HasPrefix(kv, "CUDA_") {
			vars = append(vars, kv)
		}
	}
	return append(vars, "GPULOCK_DIR="+dir)
}

// command is bin with args in its own process group, in lock directory dir.
func command(bin, dir string, args ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.Env = cleanEnv(dir)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.WaitDelay = eventTimeout // never hang on a pipe a grandchild keeps
	return c
}

// runBin runs bin with args to the end: stdout, stderr, exit code.
func runBin(t *testing.T, bin, dir string, args ...string) (string, string, int) {
	t.Helper()
	c := command(bin, dir, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s %v: %v", bin, args, err)
	}
	return out.String(), errb.String(), c.ProcessState.ExitCode()
}

// start starts bin with args in the background; lines gets its stdout
// line by line, done is closed when it has exited.
func start(t *testing.T, bin, dir string, args ...string) (c *exec.Cmd, lines chan string, stderr *bytes.Buffer, done chan struct{}) {
	t.Helper()
	c = command(bin, dir, args...)
	out, err := c.StdoutPipe()
	require.NoError(t, err)
	stderr = &bytes.Buffer{}
	c.Stderr = stderr // read only after done
	require.NoError(t, c.Start())
	lines, done = make(chan string, 100), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { _ = c.Wait(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL); <-done })
	return c, lines, stderr, done
}

// line waits for the next line of lines.
func line(t *testing.T, lines chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		require.True(t, ok, "stdout closed")
		return l
	case <-time.After(eventTimeout):
		t.Fatalf("no line on stdout after %s", eventTimeout)
	}
	return ""
}

// waitDone waits, bounded by eventTimeout, until done is closed.
func waitDone(t *testing.T, done chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(eventTimeout):
		t.Fatalf("still running after %s", eventTimeout)
	}
}

// eventually waits, bounded by eventTimeout, until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, eventTimeout, 10*time.Millisecond, "waiting for %s", what)
}

// forbiddenDeps are packages that would make gpulock-exec dynamically
// linked (cgo) or heavy to start.
var forbiddenDeps = []string{
	"net", "net/http", "crypto/tls", "crypto/x509", "os/user", "runtime/cgo",
	"github.com/redis/go-redis/v9", "github.com/gpulock/gpulock/internal/shim",
	"github.com/gpulock/gpulock/internal/metrics",
	// urfave/cli's package initialisation (its man page generator) was a
	// quarter of gpulock-exec's start-up work (docs/BENCHMARKS.md, round 6).
	"github.com/urfave/cli/v2", "github.com/russross/blackfriday/v2",
	"github.com/gpulock/gpulock/internal/execcli",
}

// TestNoNetNoCgo: gpulock-exec links neither net nor os/user nor cgo nor
// urfave/cli, and its default build is statically linked (no ELF
// interpreter).
func TestNoNetNoCgo(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/gpulock/gpulock/internal/execcmd")
	for _, bad := range forbiddenDeps {
		assert.NotContains(t, deps, bad)
	}
	f, err := elf.Open(smallBin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "gpulock-exec is dynamically linked")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs)
}

// TestHelpIsGpulockExecs: the help is `gpulock exec --help`'s, word for word.
func TestHelpIsGpulockExecs(t *testing.T) {
	dir := t.TempDir()
	for _, flag := range []string{"--help", "-h"} {
		small, smallErr, smallCode := runBin(t, smallBin, dir, flag)
		full, fullErr, fullCode := runBin(t, fullBin, dir, "exec", flag)
		require.Equal(t, 0, smallCode, smallErr)
		require.Equal(t, 0, fullCode, fullErr)
		assert.Contains(t, small, "--conflict-exit-code")
		assert.Equal(t, full, small)
	}
}

// TestRunsHoldingTheLock: the command runs holding GPU 0's lock, which
// flock(1) sees held, with the GPU's variables.
func TestRunsHoldingTheLock(t *testing.T) {
	flock := need(t, "flock")
	dir := t.TempDir()
	lock := filepath.Join(dir, "gpu0.lock")
	out, stderr, code := runBin(t, smallBin, dir, "--gpu", "0", "--", "sh", "-c",
		`"$1" -n "$2" true; echo "flock $? $GPULOCK_HELD_GPU $CUDA_VISIBLE_DEVICES"`, "sh", flock, lock)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "flock 1 0 0\n", out, "flock(1) -n finds the lock held")
	out, _, code = runBin(t, flock, dir, "-n", lock, "echo", "free")
	assert.Equal(t, 0, code)
	assert.Equal(t, "free\n", out, "the lock is free after")
}

// TestSameExitCodesAndMessages: gpulock-exec ends as gpulock exec does,
// with the same messages.
func TestSameExitCodesAndMessages(t *testing.T) {
	flock := need(t, "flock")
	dir := t.TempDir()
	holder, lines, _, _ := start(t, flock, dir, filepath.Join(dir, "gpu1.lock"), "sh", "-c", "echo held; exec sleep 1000")
	require.Equal(t, "held", line(t, lines))
	for _, c := range []struct {
		code int
		args []string
	}{
		{0, []string{"--", "true"}},
		{3, []string{"--", "sh", "-c", "exit 3"}},
		{137, []string{"--", "sh", "-c", "kill -9 $$"}},
		{127, []string{"--", "no-such-command-gpulock"}},
		{2, []string{}},
		{2, []string{"--no-such-flag", "--", "true"}},
		{2, []string{"--gpu", "-1", "--", "true"}},
		{2, []string{"--timeout", "5", "--", "true"}},
		{75, []string{"--gpu", "1", "--nonblock", "--", "true"}},
		{9, []string{"--gpu", "1", "--nonblock", "-E", "9", "--", "true"}},
		{75, []string{"--gpu", "1", "--timeout", "50ms", "--", "true"}},
		{66, []string{"--lock-dir", filepath.Join(dir, "missing"), "--", "true"}},
	} {
		_, smallErr, smallCode := runBin(t, smallBin, dir, c.args...)
		_, fullErr, fullCode := runBin(t, fullBin, dir, append([]string{"exec"}, c.args...)...)
		assert.Equal(t, c.code, smallCode, "%v: %s", c.args, smallErr)
		assert.Equal(t, fullCode, smallCode, "%v", c.args)
		assert.Equal(t, strings.ReplaceAll(fullErr, strconv.Itoa(holder.Process.Pid), "PID"),
			strings.ReplaceAll(smallErr, strconv.Itoa(holder.Process.Pid), "PID"), "%v", c.args)
	}
}

// TestSIGKILLEndsTheCommandsGroup: a gpulock-exec killed with SIGKILL
// takes its command and the command's children along (the group guard
// runs gpulock-exec's own killing half), so the lock is freed.
func TestSIGKILLEndsTheCommandsGroup(t *testing.T) {
	flock := need(t, "flock")
	dir := t.TempDir()
	c, lines, _, done := start(t, smallBin, dir, "--", "sh", "-c", "sleep 1000 & echo $!; wait")
	pid, err := strconv.Atoi(line(t, lines))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, 0), "the command's child runs")
	require.NoError(t, c.Process.Signal(syscall.SIGKILL))
	waitDone(t, done)
	eventually(t, "the command's child to be killed", func() bool { return !alive(pid) })
	eventually(t, "the lock to be free", func() bool {
		return exec.Command(flock, "-n", filepath.Join(dir, "gpu0.lock"), "true").Run() == nil
	})
}

// alive reports whether pid is a process that has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// TestNestedIsRefused: a gpulock-exec inside another asking for the GPU
// that the outer one holds is refused (2), naming it.
func TestNestedIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := runBin(t, smallBin, dir, "--gpu", "0", "--", smallBin, "--gpu", "0", "--", "true")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "already held by an enclosing gpulock-exec")
}
