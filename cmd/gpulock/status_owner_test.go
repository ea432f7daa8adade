package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatusListsGoodGPUsBesideABadFile: one bad lock file does not hide
// the others; status still ends with the bad file's code.
func TestStatusListsGoodGPUsBesideABadFile(t *testing.T) {
	e := newEnv(t)
	e.hold(0, "comfyui")
	ln, err := net.Listen("unix", filepath.Join(e.dir, "gpu1.lock"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "gpu2.lock"), nil, 0o666))

	out, stderr, code := e.run("status")
	assert.Equal(t, exitCantCreate, code)
	assert.Contains(t, requireOneLine(t, stderr), "gpu1.lock: is a unix socket")
	assert.Regexp(t, `(?m)^0\s+held\s+comfyui\s`, out)
	assert.Regexp(t, `(?m)^1\s+error\s+.*gpu1.lock: is a unix socket`, out)
	assert.Regexp(t, `(?m)^2\s+free`, out)

	out, _, code = e.run("status", "--json")
	assert.Equal(t, exitCantCreate, code)
	var list []gpulock.Status
	require.NoError(t, json.Unmarshal([]byte(out), &list), out)
	require.Len(t, list, 3)
	assert.True(t, list[0].Held)
	assert.Empty(t, list[0].Error)
	assert.Contains(t, list[1].Error, "is a unix socket")
	assert.False(t, list[2].Held)

	out, _, code = e.run("status", "--gpu", "1-2")
	assert.Equal(t, exitCantCreate, code)
	assert.Regexp(t, `(?m)^1\s+error\s`, out)
	assert.Regexp(t, `(?m)^2\s+free`, out)
}

// TestStatusEscapesControlCharacters: a service name with terminal escapes
// is printed escaped, in the table and in the waiting line.
func TestStatusEscapesControlCharacters(t *testing.T) {
	e := newEnv(t)
	evil := "evil\x1b[2J\x1b]0;pwned\a"
	e.hold(0, evil)
	out, stderr, code := e.run("status")
	require.Equal(t, 0, code, stderr)
	assert.NotContains(t, out, "\x1b")
	assert.NotContains(t, out, "\a")
	assert.Contains(t, out, strconv.Quote(evil))

	_, stderr, code = e.run("exec", "--nonblock", "--", "true")
	assert.Equal(t, exitTempFail, code)
	assert.NotContains(t, stderr, "\x1b")
	assert.Contains(t, stderr, strconv.Quote(evil))
}

// TestStatusShowsOrphan: gpulock exec is killed while a process its
// command started in a session of its own keeps the inherited lock.
func TestStatusShowsOrphan(t *testing.T) {
	e := newEnv(t)
	setsid := need(t, "setsid")
	p := e.start("exec", "--name", "job", "--", "sh", "-c", setsid+" sleep 600 >/dev/null 2>&1 </dev/null & echo $!; exec sleep 600")
	orphan, err := strconv.Atoi(p.line())
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(orphan, syscall.SIGKILL) })
	wrapper := p.cmd.Process.Pid
	// Until setsid has run, the sleep is in the command's group, which the
	// group guard kills with the wrapper.
	eventually(t, "the orphan to lead a group of its own", func() bool {
		g, ok := procGroup(orphan)
		return ok && g == orphan
	})
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.wait()

	want := "orphan: wrapper " + strconv.Itoa(wrapper) + " gone, held by pid " + strconv.Itoa(orphan) + " (sleep)"
	out, stderr, code := e.run("status")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `(?m)^0\s+orphan\s`, out)
	assert.Contains(t, out, want)

	_, stderr, _ = e.run("exec", "--nonblock", "--", "true")
	assert.Contains(t, stderr, "held by an "+want)
}

// TestStatusMarksAPidTheFileMisstates: the lock file names pid 1 while
// flock(1) holds it: status shows flock's pid and says what the file says.
func TestStatusMarksAPidTheFileMisstates(t *testing.T) {
	e := newEnv(t)
	host, err := os.Hostname()
	require.NoError(t, err)
	forged := `{"pid":1,"host":"` + host + `","service":"comfyui","since":"2020-01-01T00:00:00Z"}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "gpu0.lock"), []byte(forged), 0o666))
	holder := e.flockHold(0)
	out, stderr, code := e.run("status")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `(?m)^0\s+held\s+comfyui\s+`+strconv.Itoa(holder.cmd.Process.Pid)+` \(file says 1\)\s`, out)
	assert.True(t, strings.Count(out, "\n") >= 2, out)
}

// TestStatusShowsWhoReallyQueued: user nobody puts a ticket in line that
// claims to be comfyui of another pid; status shows nobody and the pid of
// the process holding the ticket.
func TestStatusShowsWhoReallyQueued(t *testing.T) {
	if os.Geteuid() != 0 {
		require.Empty(t, os.Getenv("CI"), "CI runs as root: this test must run there")
		t.Skip("needs root to run a child as another user")
	}
	e := newEnv(t)
	flock := need(t, "flock")
	// Like /tmp: nobody must reach and write the lock directory.
	require.NoError(t, os.Chmod(e.dir, 0o777|os.ModeSticky))
	for d := filepath.Dir(e.dir); d != "/" && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	e.hold(0, "a1111")
	queue := filepath.Join(e.dir, "gpu0.queue")
	_, err := os.Stat(queue)
	if os.IsNotExist(err) {
		require.NoError(t, os.Mkdir(queue, 0o777))
		require.NoError(t, os.Chmod(queue, 0o777|os.ModeSticky))
	}
	ticket := filepath.Join(queue, "00000000000000000001-1-00000001")
	desc := `{"pid":1,"host":"x","service":"comfyui","since":"2020-01-01T00:00:00Z"}`
	c := exec.Command("/bin/sh", "-c", `printf '%s\n' "$2" >"$1" && exec "$3" "$1" sh -c 'echo ready; exec cat'`, "sh", ticket, desc, flock)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := c.StdinPipe()
	require.NoError(t, err)
	stdout, err := c.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, c.Start())
	t.Cleanup(func() { stdin.Close(); _ = c.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the child as nobody did not start")
	require.Equal(t, "ready\n", line)

	out, stderr, code := e.run("status")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `(?m)^\s+waiting 1\s+comfyui\s+`+strconv.Itoa(c.Process.Pid)+` \(file says 1\)\s+nobody\s`, out)
}
