package nginxtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/stretchr/testify/require"
)

const (
	// eventTimeout bounds every wait for an event in these tests.
	eventTimeout = 30 * time.Second
	// pollEvery is how often a condition is checked while waiting for it.
	pollEvery = 10 * time.Millisecond
	// step is one simulated sampling step.
	step = 5 * time.Millisecond
)

// gpulockBin is the gpulock binary built for these tests.
var gpulockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gpulock-nginxtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gpulockBin = filepath.Join(dir, "gpulock")
	out, err := exec.Command("go", "build", "-o", gpulockBin, "github.com/gpulock/gpulock/cmd/gpulock").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building gpulock: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireComponent fails the test when a real component it needs is
// missing in CI (where .ci/run installs it), and skips it, saying why,
// elsewhere.
func requireComponent(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI must provide it: see .ci/run)", why)
	}
	t.Skip(why)
}

// nginxPath returns Debian's nginx binary.
func nginxPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	requireComponent(t, false, "nginx is not installed (apt-get install nginx)")
	return ""
}

// proc is a process started by a test; it is killed at the end of the test.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t testing.TB, logDir, name string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill stops the process at once and waits for it.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// logText returns what the process wrote so far.
func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on port.
func waitListening(t testing.TB, port int, p *proc) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(eventTimeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", p.cmd.Path, p.logText())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after %v:\n%s", p.cmd.Path, addr, eventTimeout, p.logText())
		}
		time.Sleep(pollEvery) // polling a port: the process gives no other sign
	}
}

// machine is one simulated GPU host: per GPU a fake ComfyUI and a fake
// A1111, each behind a gpulock shim, every one its own process, sharing the
// machine's lock directory and simulated GPUs.
type machine struct {
	index  int
	dir    string
	simDir string
	gpus   int
	procs  []*proc
	shims  []*proc
	// comfyShim[g] and a1111Shim[g] are GPU g's shim ports.
	comfyShim, a1111Shim []int
}

// startMachine starts machine index with gpus simulated GPUs; extra flags
// go to every shim.
func startMachine(t *testing.T, index, gpus int, shimFlags ...string) *machine {
	return startMachineWith(t, index, gpus, nil, shimFlags)
}

// startMachineWith is startMachine with extra flags for the fake backends too.
func startMachineWith(t *testing.T, index, gpus int, fakeFlags, shimFlags []string) *machine {
	t.Helper()
	m := &machine{index: index, dir: t.TempDir(), gpus: gpus}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("machine %d's shims logged:\n%s", index, m.shimLogs())
		}
	})
	m.simDir = filepath.Join(m.dir, "sim")
	locks := filepath.Join(m.dir, "locks")
	require.NoError(t, os.MkdirAll(locks, 0o755))
	for g := range gpus {
		for _, kind := range []string{"comfyui", "a1111"} {
			backend := freePort(t)
			name := fmt.Sprintf("m%d-gpu%d-%s", index, g, kind)
			fakeArgs := append([]string{"fake",
				"--listen", "127.0.0.1:" + strconv.Itoa(backend), "--sim-dir", m.simDir, "--gpu", strconv.Itoa(g),
				"--step", step.String(), "--default-steps", "4"}, fakeFlags...)
			fake := startProc(t, m.dir, name+"-backend", gpulockBin, append(fakeArgs, kind)...)
			waitListening(t, backend, fake)
			port := freePort(t)
			args := append([]string{"shim", "--listen", "127.0.0.1:" + strconv.Itoa(port),
				"--upstream", "http://127.0.0.1:" + strconv.Itoa(backend), "--gpu", strconv.Itoa(g),
				"--profile", kind, "--lock-dir", locks}, shimFlags...)
			shim := startProc(t, m.dir, name+"-shim", gpulockBin, args...)
			waitListening(t, port, shim)
			m.procs = append(m.procs, fake, shim)
			m.shims = append(m.shims, shim)
			if kind == "comfyui" {
				m.comfyShim = append(m.comfyShim, port)
			} else {
				m.a1111Shim = append(m.a1111Shim, port)
			}
		}
	}
	return m
}

// kill kills every process of the machine at once, as a power cut would.
func (m *machine) kill() {
	for _, p := range m.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range m.procs {
		<-p.done
	}
}

// gpu opens simulated GPU g of the machine, to read its figures.
func (m *machine) gpu(t *testing.T, g int) *simgpu.GPU {
	t.Helper()
	gpu, err := simgpu.Open(m.simDir, g, simgpu.Options{})
	require.NoError(t, err)
	return gpu
}

// shimLogs returns what the machine's shims logged.
func (m *machine) shimLogs() string {
	var b strings.Builder
	for _, p := range m.shims {
		b.WriteString(p.logText())
	}
	return b.String()
}

var (
	hostPort   = regexp.MustCompile(`\b(gpu-host-\d+|127\.0\.0\.1):(\d+)\b`)
	listenPort = regexp.MustCompile(`\blisten (\d+);`)
)

// startNginx runs nginx with the example configuration file example
// (relative to examples/nginx) inside a minimal main configuration. Each
// "host:port" of a server line and each "listen port" is replaced as the
// maps say; a missing key fails the test, so the example and the test
// cannot drift apart.
func startNginx(t *testing.T, example string, servers map[string]string, listens map[string]int) *proc {
	t.Helper()
	bin := nginxPath(t)
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "nginx", example))
	require.NoError(t, err)
	var conf strings.Builder
	for line := range strings.Lines(string(src)) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			conf.WriteString(line) // comments keep their examples
			continue
		}
		line = hostPort.ReplaceAllStringFunc(line, func(s string) string {
			to, ok := servers[s]
			require.True(t, ok, "the test has no address for %s in %s", s, example)
			return to
		})
		line = listenPort.ReplaceAllStringFunc(line, func(s string) string {
			from := listenPort.FindStringSubmatch(s)[1]
			to, ok := listens[from]
			require.True(t, ok, "the test has no port for listen %s in %s", from, example)
			return fmt.Sprintf("listen 127.0.0.1:%d;", to)
		})
		conf.WriteString(line)
	}
	prefix := t.TempDir()
	shared, err := os.ReadFile(filepath.Join("..", "..", "examples", "nginx", "gpulock-proxy.conf"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(prefix, "gpulock-proxy.conf"), shared, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(prefix, example), []byte(conf.String()), 0o644))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must write the temp directories under the test's prefix
	}
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 2;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/%[3]s;
}
`, user, prefix, example)
	mainPath := filepath.Join(prefix, "nginx.conf")
	require.NoError(t, os.WriteFile(mainPath, []byte(main), 0o644))
	out, err := exec.Command(bin, "-t", "-p", prefix, "-c", mainPath).CombinedOutput()
	require.NoError(t, err, "nginx -t:\n%s", out)
	p := startProc(t, prefix, "nginx", bin, "-p", prefix, "-c", mainPath)
	for _, port := range listens {
		waitListening(t, port, p)
	}
	return p
}
