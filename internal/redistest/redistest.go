// Package redistest starts a private redis-server on a free loopback port
// for tests. When redis-server is missing the test is skipped, except when
// CI=true, where it fails: CI installs it (.ci/run).
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds how long Start waits for redis-server to accept.
const startTimeout = 10 * time.Second

// Server is a running redis-server owned by one test.
type Server struct {
	// Addr is host:port on loopback.
	Addr string
	cmd  *exec.Cmd
	dir  string
	port int
	t    testing.TB
	// persist keeps the data across Restart (StartPersistent).
	persist bool
}

// URL returns the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Start runs redis-server on a free loopback port with no persistence; it
// is stopped when the test ends. It fails the test when the server does not
// accept connections within a bound.
func Start(t testing.TB) *Server {
	t.Helper()
	return (&Server{}).start(t)
}

// start runs s on a free loopback port until the test ends.
func (s *Server) start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: redis-server not found (CI=true: install it, see .ci/run): %v", err)
		}
		t.Skipf("redistest: redis-server not found: %v", err)
	}
	s.dir, s.t = t.TempDir(), t
	s.port = freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.run(bin)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) run(bin string) {
	s.t.Helper()
	s.cmd = exec.Command(bin, s.args()...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr) == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: redis-server at %s did not answer PING within %v", s.Addr, startTimeout)
		}
		// Waiting for an external process to bind: nothing to wake on, poll briefly.
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the server and waits for it; safe to call twice.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart stops the server and starts a new one on the same port: empty
// (state is lost, as after a crash without persistence), or with the data
// of its append-only file when started with StartPersistent.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	s.run(bin)
}

func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redistest: unexpected reply %q", line)
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
