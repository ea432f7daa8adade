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

// TestExecWaitsForADeadShimsBackend: a shim process holds GPU 0 on behalf
// of its busy backend and is SIGKILLed. gpulock exec then gets the lock but
// runs its command only once that backend reports idle.
func TestExecWaitsForADeadShimsBackend(t *testing.T) {
	e := newEnv(t)
	backend := &busyA1111{}
	backend.busy.Store(true)
	srv := httptest.NewServer(backend)
	defer srv.Close()

	shim := e.start("shim", "--listen", "127.0.0.1:0", "--upstream", srv.URL, "--profile", "a1111", "--gpu", "0")
	eventually(t, "the shim to hold GPU 0 for its busy backend", func() bool {
		st := e.status(0)
		return st.Holder != nil && st.Holder.PID == shim.cmd.Process.Pid
	})
	require.NoError(t, syscall.Kill(shim.cmd.Process.Pid, syscall.SIGKILL))
	<-shim.done

	job := e.start("exec", "--gpu", "0", "--", "echo", "ran")
	asked := backend.asked.Load()
	eventually(t, "exec to ask the dead shim's backend", func() bool { return backend.asked.Load() >= asked+3 })
	select {
	case l := <-job.lines:
		t.Fatalf("exec ran its command while the dead shim's backend was busy: %q", l)
	case <-job.done:
		t.Fatalf("exec ended while the dead shim's backend was busy; stderr: %s", job.stderr.String())
	default:
	}
	start := time.Now()
	backend.busy.Store(false)
	require.Equal(t, "ran", job.line())
	assert.Less(t, time.Since(start), 5*time.Second)
	require.Equal(t, 0, job.wait())
	assert.Contains(t, job.stderr.String(), "died holding it")
	assert.Contains(t, job.stderr.String(), "idle; going ahead")
}

// TestExecSignalEndsTheWaitForADeadShimsBackend: exec --nonblock does not
// wait for a dead shim's busy backend (75); SIGTERM while exec waits for it
// ends exec with 143 without running the command; and the next holder
// still finds the dead shim's backend.
func TestExecSignalEndsTheWaitForADeadShimsBackend(t *testing.T) {
	e := newEnv(t)
	backend := &busyA1111{}
	backend.busy.Store(true)
	srv := httptest.NewServer(backend)
	defer srv.Close()

	shim := e.start("shim", "--listen", "127.0.0.1:0", "--upstream", srv.URL, "--profile", "a1111", "--gpu", "0")
	eventually(t, "the shim to hold GPU 0 for its busy backend", func() bool {
		st := e.status(0)
		return st.Holder != nil && st.Holder.PID == shim.cmd.Process.Pid
	})
	require.NoError(t, syscall.Kill(shim.cmd.Process.Pid, syscall.SIGKILL))
	<-shim.done

	_, stderr, code := e.run("exec", "--gpu", "0", "--nonblock", "--", "echo", "ran")
	assert.Equal(t, exitTempFail, code, "--nonblock does not wait for the dead shim's backend: %s", stderr)
	assert.Contains(t, stderr, "still runs a job")

	job := e.start("exec", "--gpu", "0", "--", "echo", "ran")
	eventually(t, "exec to say that it waits", func() bool { return len(job.stderr.String()) > 0 })
	job.signal(syscall.SIGTERM)
	require.Equal(t, 143, job.wait(), "stderr: %s", job.stderr.String())

	h, err := e.lockOf(0).TryAcquire()
	require.NoError(t, err)
	defer h.Release()
	left, ok := h.Leftover()
	require.True(t, ok, "the dead shim's description is passed on")
	require.NotNil(t, left.Backend)
	assert.Equal(t, srv.URL, left.Backend.Upstream)
}
