package gpulock

import (
	"os"
	"path/filepath"
	"strconv"
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
	turn    Turn
	aging   time.Duration
	fair    bool
}

func newConfig(opts []Option) config {
	c := config{
		dir:     os.Getenv(DirEnv),
		service: filepath.Base(os.Args[0]),
		command: filepath.Base(os.Args[0]),
		refresh: defaultRefreshInterval,
		turn:    Turn{Client: userClient()},
		aging:   DefaultAging,
		fair:    true,
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

// userClient is the default client of a Lock: the user running it.
func userClient() string { return "uid:" + strconv.Itoa(os.Getuid()) }

// WithClient sets the client that this Lock's waits are for, for fair
// turns between clients (default: the user, as "uid:<uid>").
func WithClient(client string) Option {
	return func(c *config) {
		if client != "" {
			c.turn.Client = client
		}
	}
}

// WithPriority sets the priority of this Lock's waits (default normal).
func WithPriority(p Priority) Option {
	return func(c *config) { c.turn.Priority = p.clamp() }
}

// WithAging sets how long a wait takes to rise one priority level, and the
// length of a client's round across processes (default DefaultAging). Zero
// or less turns aging off: a low wait then yields to every higher one.
func WithAging(d time.Duration) Option {
	return func(c *config) { c.aging = d }
}

// WithFairTurns turns fair turns between clients on (the default) or off.
// Off, this process's waits are served in plain arrival order, whatever
// their client, and its places in line across processes are taken in
// arrival order too. Priorities count either way.
func WithFairTurns(on bool) Option {
	return func(c *config) { c.fair = on }
}
