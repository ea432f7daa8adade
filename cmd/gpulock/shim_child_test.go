package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freeLoopbackPort returns a loopback port nobody listens on now.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var backendPIDRe = regexp.MustCompile(`backend_pid=(\d+)`)

// backendPID waits for the shim to log its backend's pid.
func backendPID(t *testing.T, p *proc) int {
	t.Helper()
	var pid int
	eventually(t, "the shim to log its backend's pid", func() bool {
		m := backendPIDRe.FindStringSubmatch(p.stderr.String())
		if m == nil {
			return false
		}
		pid, _ = strconv.Atoi(m[1])
		return true
	})
	return pid
}

// shimWithFake starts `gpulock shim -- gpulock fake comfyui` and waits until
// the shim serves; it returns the shim, its base URL and the backend's pid.
func shimWithFake(t *testing.T, e *env, extra ...string) (*proc, string, int) {
	t.Helper()
	port, backend := freeLoopbackPort(t), freeLoopbackPort(t)
	args := append([]string{"shim", "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--upstream", "http://127.0.0.1:" + strconv.Itoa(backend), "--profile", "comfyui"}, extra...)
	args = append(args, "--", binPath, "fake", "--listen", "127.0.0.1:"+strconv.Itoa(backend),
		"--sim-dir", filepath.Join(e.dir, "sim"), "--step", "5ms", "comfyui")
	p := e.start(args...)
	pid := backendPID(t, p)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	eventually(t, "the shim to serve", func() bool { return strings.Contains(p.stderr.String(), "gpulock shim serving") })
	return p, base, pid
}

// get fetches url and returns its status code.
func get(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: eventTimeout}
	resp, err := c.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestShimChildServesAndStopsOnSIGTERM: the shim serves in front of the
// backend it started; SIGTERM stops the shim, then the backend, and the
// shim exits with the backend's status (the fake exits 0 on SIGTERM).
func TestShimChildServesAndStopsOnSIGTERM(t *testing.T) {
	e := newEnv(t)
	shim, base, pid := shimWithFake(t, e)
	assert.Equal(t, http.StatusOK, get(t, base+"/queue"), "passed through to the backend")
	assert.Equal(t, http.StatusOK, get(t, base+"/gpulock/status"))
	assert.True(t, processLives(pid))

	shim.signal(syscall.SIGTERM)
	assert.Equal(t, 0, shim.wait(), "stderr: %s", shim.stderr.String())
	assert.False(t, processLives(pid), "the backend is stopped with the shim")
}

// TestShimChildExitEndsTheShim: the backend's death in the middle of a
// prompt ends the shim, at once, with the backend's status (128+9 for
// SIGKILL).
func TestShimChildExitEndsTheShim(t *testing.T) {
	e := newEnv(t)
	shim, base, pid := shimWithFake(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	body := `{"prompt": ` + string(fakecomfy.TextToImagePrompt(2000, 1)) + `}` // 10 s of work
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/prompt", strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	eventually(t, "the prompt to hold the GPU", func() bool { return e.status(0).Holder != nil })

	start := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	assert.Equal(t, 128+9, shim.wait(), "stderr: %s", shim.stderr.String())
	assert.Contains(t, shim.stderr.String(), "the backend exited")
	assert.Less(t, time.Since(start), 5*time.Second, "a dead backend's prompts do not hold the shim up")
}

// TestShimChildDiesWithTheShim: SIGKILL of the shim takes the backend and
// its process group with it.
func TestShimChildDiesWithTheShim(t *testing.T) {
	e := newEnv(t)
	shim, _, pid := shimWithFake(t, e)
	require.NoError(t, syscall.Kill(shim.cmd.Process.Pid, syscall.SIGKILL))
	shim.wait()
	eventually(t, "the backend to die with the shim", func() bool { return !processLives(pid) })
}

// TestShimChildGroupDiesWithTheShim: a backend launcher script's own child
// (python under webui.sh, say) dies too when the shim is SIGKILLed.
func TestShimChildGroupDiesWithTheShim(t *testing.T) {
	e := newEnv(t)
	port, backend := freeLoopbackPort(t), freeLoopbackPort(t)
	shim := e.start("shim", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--upstream", "http://127.0.0.1:"+strconv.Itoa(backend),
		"--", "sh", "-c", fmt.Sprintf("%s fake --listen 127.0.0.1:%d --sim-dir %s comfyui & echo $!; wait",
			binPath, backend, filepath.Join(e.dir, "sim")))
	grandchild, err := strconv.Atoi(shim.line())
	require.NoError(t, err)
	eventually(t, "the shim to serve", func() bool { return strings.Contains(shim.stderr.String(), "gpulock shim serving") })
	require.NoError(t, syscall.Kill(shim.cmd.Process.Pid, syscall.SIGKILL))
	shim.wait()
	eventually(t, "the backend's own child to die with the shim", func() bool { return !processLives(grandchild) })
}

// TestShimChildOutputAndExitCode: the backend's output is the shim's, and a
// backend that exits before it answers ends the shim with its code.
func TestShimChildOutputAndExitCode(t *testing.T) {
	e := newEnv(t)
	stdout, stderr, code := e.run("shim", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9",
		"--", "sh", "-c", "echo out-of-backend; echo err-of-backend >&2; exit 7")
	assert.Equal(t, 7, code, stderr)
	assert.Equal(t, "out-of-backend\n", stdout)
	assert.Contains(t, stderr, "err-of-backend")
	assert.Contains(t, stderr, "exited before it answered")
	assert.NotContains(t, stderr, "gpulock shim serving")

	_, stderr, code = e.run("shim", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--", "no-such-backend-command")
	assert.Equal(t, exitNotFound, code, stderr)
}

// TestShimChildGPUEnv: the backend runs on the shim's --gpu, nvidia-smi's
// numbering, unless CUDA_VISIBLE_DEVICES is set already.
func TestShimChildGPUEnv(t *testing.T) {
	e := newEnv(t)
	args := []string{"shim", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--gpu", "3",
		"--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER"}
	stdout, stderr, code := e.run(args...)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "3 PCI_BUS_ID\n", stdout)

	stdout, stderr, code = e.with("CUDA_VISIBLE_DEVICES=GPU-1234").run(args...)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "GPU-1234\n", stdout, "the user's own mapping is kept")
}

// TestShimChildReadyTimeout: a backend that never answers is stopped after
// --ready-timeout, and the shim exits 69.
func TestShimChildReadyTimeout(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	_, stderr, code := e.run("shim", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9",
		"--ready-timeout", "300ms", "--backend-stop-timeout", "2s", "--", "sleep", "600")
	assert.Equal(t, exitUnavailable, code, stderr)
	assert.Contains(t, stderr, "did not answer")
	assert.Less(t, time.Since(start), eventTimeout)
}
