package redistest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// persistentConf is the configuration file of a persistent server: every
// write is in the append-only file before Redis answers it, so a SIGKILL
// loses nothing that a client was told is done.
const persistentConf = "appendonly yes\nappendfsync always\nsave \"\"\n"

// StartPersistent is Start with `appendonly yes` in the server's
// configuration file: Stop (a SIGKILL) and Restart keep the data, as a
// production Redis run as the README says does.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	s := &Server{persist: true}
	return s.start(t)
}

// args is the redis-server command line of the server.
func (s *Server) args() []string {
	flags := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--daemonize", "no"}
	if !s.persist {
		return append(flags, "--save", "", "--appendonly", "no")
	}
	conf := filepath.Join(s.dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(persistentConf), 0o644); err != nil {
		s.t.Fatalf("redistest: write %s: %v", conf, err)
	}
	return append([]string{conf}, flags...)
}
