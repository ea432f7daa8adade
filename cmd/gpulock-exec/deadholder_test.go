package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/deadholdertest"
)

// busyA1111 answers A1111's /sdapi/v1/progress, busy while busy is set,
// and counts the questions.
type busyA1111 struct {
	busy  atomic.Bool
	asked atomic.Int64
}

func (b *busyA1111) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/sdapi/v1/progress" {
		http.NotFound(w, r)
		return
	}
	b.asked.Add(1)
	w.Header().Set("Content-Type", "application/json")
	n := 0
	if b.busy.Load() {
		n = 1
	}
	_, _ = io.WriteString(w, `{"state": {"job_count": `+strconv.Itoa(n)+`}}`)
}

// TestWaitsForADeadShimsBackend: a gpulock shim holds GPU 0 for its busy
// backend and is SIGKILLed. gpulock-exec, which asks the backend without
// net/http, then holds the lock but runs its command only once that
// backend reports idle; --nonblock does not wait (75), as gpulock exec.
func TestWaitsForADeadShimsBackend(t *testing.T) {
	dir := t.TempDir()
	backend := &busyA1111{}
	backend.busy.Store(true)
	srv := httptest.NewServer(backend)
	defer srv.Close()

	shim, _, _, shimDone := start(t, fullBin, dir, "shim", "--listen", "127.0.0.1:0", "--upstream", srv.URL, "--profile", "a1111", "--gpu", "0")
	l, err := gpulock.New(0, gpulock.WithDir(dir))
	require.NoError(t, err)
	eventually(t, "the shim to hold GPU 0 for its busy backend", func() bool {
		st, err := l.Status()
		return err == nil && st.Holder != nil && st.Holder.PID == shim.Process.Pid
	})
	require.NoError(t, syscall.Kill(shim.Process.Pid, syscall.SIGKILL))
	waitDone(t, shimDone)

	_, stderr, code := runBin(t, smallBin, dir, "--gpu", "0", "--nonblock", "--", "echo", "ran")
	assert.Equal(t, 75, code, "--nonblock does not wait for the dead shim's backend: %s", stderr)
	assert.Contains(t, stderr, "still runs a job")

	job, lines, jobErr, done := start(t, smallBin, dir, "--gpu", "0", "--", "echo", "ran")
	asked := backend.asked.Load()
	eventually(t, "gpulock-exec to ask the dead shim's backend", func() bool { return backend.asked.Load() >= asked+3 })
	select {
	case l := <-lines:
		t.Fatalf("gpulock-exec ran its command while the dead shim's backend was busy: %q", l)
	case <-done:
		t.Fatalf("gpulock-exec ended while the dead shim's backend was busy")
	default:
	}
	began := time.Now()
	backend.busy.Store(false)
	require.Equal(t, "ran", line(t, lines))
	assert.Less(t, time.Since(began), 5*time.Second)
	waitDone(t, done)
	assert.Equal(t, 0, job.ProcessState.ExitCode(), jobErr.String())
	assert.Contains(t, jobErr.String(), "died holding it")
	assert.Contains(t, jobErr.String(), "idle; going ahead")
}

// TestDeadShimsHTTPSBackendIsNotGuessedIdle: a shim died holding GPU 0 and
// named an https backend, which gpulock-exec cannot ask without TLS. It
// does not run its command (exit 69, saying to run gpulock exec), and the
// dead shim's description stays for the next holder.
func TestDeadShimsHTTPSBackendIsNotGuessedIdle(t *testing.T) {
	dir := t.TempDir()
	deadholdertest.Leave(t, dir, "shim", "comfyui", "https://127.0.0.1:8188")

	stdout, stderr, code := runBin(t, smallBin, dir, "--gpu", "0", "--", "echo", "ran")
	assert.Equal(t, 69, code, stderr)
	assert.NotContains(t, stdout, "ran")
	assert.Contains(t, stderr, "run gpulock exec")

	l, err := gpulock.New(0, gpulock.WithDir(dir))
	require.NoError(t, err)
	next, err := l.TryAcquire()
	require.NoError(t, err)
	defer func() { _ = next.Release() }()
	left, ok := next.Leftover()
	require.True(t, ok, "the dead shim's description is passed on")
	require.NotNil(t, left.Backend)
	assert.Equal(t, "https://127.0.0.1:8188", left.Backend.Upstream)
}
