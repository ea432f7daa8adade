package gpulock

import (
	"os"
	"path/filepath"
	"time"
)

// DefaultDir is the lock directory used when neither WithDir nor the
// GPULOCK_DIR environment variable names one.
const DefaultDir = "/tmp"

// DirEnv is the environment variable that overrides DefaultDir.
const DirEnv = "GPULOCK_DIR"

// defaultRefreshInterval is how often a long holder touches its lock file so
// that age-based /tmp cleaners (systemd-tmpfiles: 10 days) leave it alone.
const defaultRefreshInterval = time.Hour

// Option configures a Lock.
type Option func(*config)

type config struct {
	dir     string
	service string
	command string
	refresh time.Duration
	backend *Backend
}

func newConfig(opts []Option) config {
	c := config{
		dir:     os.Getenv(DirEnv),
		service: filepath.Base(os.Args[0]),
		command: filepath.Base(os.Args[0]),
		refresh: defaultRefreshInterval,
	}
	if c.dir == "" {
		c.dir = DefaultDir
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithDir sets the lock directory, overriding GPULOCK_DIR and DefaultDir.
// Every process that shares a GPU must use the same directory.
func WithDir(dir string) Option {
	return func(c *config) {
		if dir != "" {
			c.dir = dir
		}
	}
}

// WithService sets the service name that others see for this process while
// it holds or waits for the lock (default: the program's base name).
func WithService(name string) Option {
	return func(c *config) {
		if name != "" {
			c.service = name
		}
	}
}

// WithCommand sets the command text that others see for this process
// while it holds or waits for the lock (default: the program's base name,
// argv[0] without its directory). The text is readable by every user of
// the lock directory, and stays there while the lock is held: pass a full
// command line (strings.Join(os.Args, " ")) only when it holds no secrets.
func WithCommand(cmd string) Option {
	return func(c *config) { c.command = cmd }
}

// WithRefreshInterval sets how often a holder refreshes the lock file's
// times (default one hour). Zero or less turns refreshing off.
func WithRefreshInterval(d time.Duration) Option {
	return func(c *config) { c.refresh = d }
}
