package nginxtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var listenFlag = regexp.MustCompile(`--listen \S+`)

// TestSystemdUnitsCommandLines runs the gpulock command line of every unit
// in examples/systemd as it is written (the listen port and the lock
// directory substituted): shims must start and serve, the exec unit's flags
// must be accepted.
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
				args := strings.Fields(listenFlag.ReplaceAllString(execStart, "--listen 127.0.0.1:"+strconv.Itoa(port)))
				p := startProc(t, t.TempDir(), "shim", gpulockBin, append(args, "--lock-dir", lockDir)...)
				waitListening(t, port, p)
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
			default:
				t.Fatalf("unknown gpulock command in %s: %s", unit, execStart)
			}
		})
	}
	assert.Equal(t, 3, tested, "two shim units and one exec unit")
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
