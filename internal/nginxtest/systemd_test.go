package nginxtest

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var listenFlag = regexp.MustCompile(`--listen \S+`)

// TestSystemdUnitsCommandLines runs the gpulock command line of every unit
// in examples/systemd as it is written (the listen port and the lock
// directory substituted): shims and the gateway must start and serve, the
// exec unit's flags must be accepted.
func TestSystemdUnitsCommandLines(t *testing.T) {
	units, err := filepath.Glob(filepath.Join("..", "..", "examples", "systemd", "*.service"))
	require.NoError(t, err)
	require.NotEmpty(t, units)
	tested := 0
	for _, unit := range units {
		b, err := os.ReadFile(unit)
		require.NoError(t, err)
		var execStart string
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart=/usr/local/bin/gpulock "); ok {
				execStart = v
			}
		}
		if execStart == "" {
			continue // a backend's unit
		}
		tested++
		t.Run(filepath.Base(unit), func(t *testing.T) {
			lockDir := t.TempDir()
			switch {
			case strings.HasPrefix(execStart, "shim "):
				port := freePort(t)
				shimLine, backend, child := strings.Cut(execStart, " -- ")
				args := strings.Fields(listenFlag.ReplaceAllString(shimLine, "--listen 127.0.0.1:"+strconv.Itoa(port)))
				args = append(args, "--lock-dir", lockDir)
				if child { // the shim starts its backend: a fake one here
					args = shimChildBackend(t, args, backend)
				}
				p := startProc(t, t.TempDir(), "shim", gpulockBin, args...)
				waitListening(t, port, p)
				if child {
					resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/gpulock/status")
					require.NoError(t, err, "%s", p.logText())
					resp.Body.Close()
					assert.Equal(t, http.StatusOK, resp.StatusCode)
				}
			case strings.HasPrefix(execStart, "exec "):
				// The job's script is the user's: run `true` in its place, on
				// the one GPU this test machine pretends to have.
				cmdline, _, ok := strings.Cut(execStart, " -- ")
				require.True(t, ok, "exec unit without ' -- COMMAND'")
				cmdline = strings.ReplaceAll(cmdline, "%i", "job")
				args := append(strings.Fields(cmdline), "--lock-dir", lockDir, "--", "true")
				cmd := exec.Command(gpulockBin, args...)
				cmd.Env = append(os.Environ(), "GPULOCK_GPUS=1")
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s", out)
			case strings.HasPrefix(execStart, "gateway "):
				// A gateway needs only Redis: the unit's EnvironmentFile
				// gives it GPULOCK_REDIS.
				t.Setenv("GPULOCK_REDIS", redistest.Start(t).URL())
				port := freePort(t)
				args := strings.Fields(listenFlag.ReplaceAllString(execStart, "--listen 127.0.0.1:"+strconv.Itoa(port)))
				p := startProc(t, t.TempDir(), "gateway", gpulockBin, args...)
				waitListening(t, port, p)
				resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/gpulock/status")
				require.NoError(t, err, "%s", p.logText())
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", p.logText())
			default:
				t.Fatalf("unknown gpulock command in %s: %s", unit, execStart)
			}
		})
	}
	assert.Equal(t, 5, tested, "two shim units, one shim unit that starts its backend, one exec unit and one gateway unit")
}

var upstreamFlag = regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`)

// shimChildBackend returns a shim unit's arguments with its upstream on a
// free port and, in place of the unit's backend command (backend), a fake
// backend of the unit's profile there.
func shimChildBackend(t *testing.T, args []string, backend string) []string {
	t.Helper()
	require.NotEmpty(t, backend)
	out := append([]string(nil), args...)
	port, profile := freePort(t), ""
	for i := 0; i+1 < len(out); i++ {
		switch out[i] {
		case "--upstream":
			require.Regexp(t, upstreamFlag, out[i+1], "the backend of a shim unit listens on loopback")
			out[i+1] = "http://127.0.0.1:" + strconv.Itoa(port)
		case "--profile":
			profile = out[i+1]
		}
	}
	require.Contains(t, []string{"comfyui", "a1111"}, profile)
	return append(out, "--", gpulockBin, "fake", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--sim-dir", t.TempDir(), profile)
}

// TestExecWarnsWhenAShimServesTheGPU runs a shim and then gpulock exec on
// its GPU: exec says that a web UI must not be run this way, and still runs
// the command once the GPU is free.
func TestExecWarnsWhenAShimServesTheGPU(t *testing.T) {
	lockDir := t.TempDir()
	port := freePort(t)
	shim := startProc(t, t.TempDir(), "shim", gpulockBin, "shim", "--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--upstream", "http://127.0.0.1:1", "--gpu", "0", "--profile", "generic", "--lock-dir", lockDir)
	waitListening(t, port, shim)
	out, err := exec.Command(gpulockBin, "exec", "--lock-dir", lockDir, "--gpu", "0", "--", "true").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "a gpulock shim serves GPU 0")
	out, err = exec.Command(gpulockBin, "exec", "--lock-dir", lockDir, "--gpu", "0", "--quiet", "--", "true").CombinedOutput()
	require.NoError(t, err)
	assert.Empty(t, string(out), "--quiet silences it")

	shim.kill()
	out, err = exec.Command(gpulockBin, "exec", "--lock-dir", lockDir, "--gpu", "0", "--", "true").CombinedOutput()
	require.NoError(t, err)
	assert.NotContains(t, string(out), "shim serves", "the mark dies with the shim")
}
