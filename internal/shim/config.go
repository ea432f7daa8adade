package shim

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Defaults of Config's fields.
const (
	// DefaultMaxBody bounds a GPU request's body: img2img payloads carry
	// base64 images of several megabytes.
	DefaultMaxBody int64 = 256 << 20
	// DefaultDrainTimeout bounds the wait for running jobs on shutdown.
	DefaultDrainTimeout = 2 * time.Minute
	// DefaultIdleTimeout bounds each wait for the backend to report idle
	// (at start-up beside a busy backend, after an interrupt).
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultRetryAfter is the Retry-After sent with a 503.
	DefaultRetryAfter = 5 * time.Second
	// DefaultWatchInterval is how often ComfyUI's queue is checked when
	// its websocket says nothing (the fallback to status frames).
	DefaultWatchInterval = 2 * time.Second
	// DefaultIdlePollInterval is how often an idle A1111 is asked whether
	// it started work on its own (an extension's job): the detection delay.
	DefaultIdlePollInterval = 100 * time.Millisecond
	// DefaultVRAMTimeout bounds the wait for a backend to free its VRAM.
	DefaultVRAMTimeout = 30 * time.Second
	// DefaultMaxBuffered bounds the bytes of GPU request bodies the shim
	// holds in memory at once, over all requests reading, waiting and
	// being forwarded (raised to MaxBody when that is larger).
	DefaultMaxBuffered int64 = 1 << 30
	// DefaultHeaderTimeout bounds the reading of a request's headers.
	DefaultHeaderTimeout = 30 * time.Second
	// DefaultBodyTimeout bounds the reading of a request's whole body: a
	// client that sends it slower gets 408. The wait in line that follows
	// does not count.
	DefaultBodyTimeout = 60 * time.Second
	// DefaultKeepAliveTimeout is how long an idle keep-alive connection is
	// kept open. It is longer than nginx's default keepalive_timeout (60s)
	// for upstreams, so that nginx, not the shim, closes a connection both
	// could use: a POST on a connection the shim just closed is not retried.
	DefaultKeepAliveTimeout = 75 * time.Second
)

// Config is what a Shim needs.
type Config struct {
	// Upstream is the backend's base URL, such as http://127.0.0.1:8188.
	Upstream *url.URL
	// GPU is the GPU whose lock the shim takes.
	GPU int
	// LockDir is the lock directory ("" means gpulock's default).
	LockDir string
	// Profile is the backend kind (LookupProfile).
	Profile Profile
	// Name is the service name others see (default: the profile's name).
	Name string
	// GPURoutes are extra GPU routes (ParseRoute), on top of the profile's.
	GPURoutes []Route
	// MaxBody bounds a GPU request's body; larger ones get 413.
	MaxBody int64
	// MaxBuffered bounds the bytes of GPU request bodies held in memory at
	// once, over all requests; a body that does not fit gets 503. 0 means
	// DefaultMaxBuffered (or MaxBody if larger); it cannot be below MaxBody.
	MaxBuffered int64
	// HeaderTimeout bounds the reading of a request's headers (0: DefaultHeaderTimeout).
	HeaderTimeout time.Duration
	// BodyTimeout bounds the reading of a request's whole body; slower
	// ones get 408. 0 means DefaultBodyTimeout, a negative value turns it off.
	BodyTimeout time.Duration
	// KeepAliveTimeout bounds how long an idle keep-alive connection stays
	// open (0: DefaultKeepAliveTimeout).
	KeepAliveTimeout time.Duration
	// MaxQueue bounds the requests waiting in line; 0 means no bound.
	MaxQueue int
	// QueueTimeout bounds a request's wait in line; 0 means no bound.
	QueueTimeout time.Duration
	// MaxHold bounds how long one job may hold the lock: then the shim
	// interrupts it (comfyui, a1111), releases the lock once it stops or
	// IdleTimeout later, and cuts its request off; a generic backend cannot
	// be interrupted, its lock is released at once (see maxhold.go). 0 means
	// the profile's default (30m for comfyui, off for the others) and a
	// negative value turns it off.
	MaxHold time.Duration
	// DrainTimeout bounds the wait for running jobs at Shutdown.
	DrainTimeout time.Duration
	// IdleTimeout bounds each wait for the backend to report idle.
	IdleTimeout time.Duration
	// RetryAfter is sent with every 503.
	RetryAfter time.Duration
	// WatchInterval is how often ComfyUI's queue is checked without news.
	WatchInterval time.Duration
	// IdlePollInterval is how often an idle A1111 is asked whether it is
	// busy with work it started on its own.
	IdlePollInterval time.Duration
	// FreeOnHandoff makes the backend free its VRAM before the GPU goes to
	// another service (see vramHandoff).
	FreeOnHandoff bool
	// VRAMTimeout bounds the wait for the backend to free its VRAM.
	VRAMTimeout time.Duration
	// StatusDetail shows full detail (command lines, request ids, the
	// upstream) on the shim's pages to every caller, not only to loopback
	// ones (see fullDetail).
	StatusDetail bool
	// Member, when set, makes the shim a member of a cluster (member.go).
	Member Member
	// Turns says how the line shares the GPU between clients.
	Turns Turns
	// PageProbeEvery is how often the status page probes the locks and the
	// backend (default DefaultPageProbeEvery); PageBucket is the width of one
	// bar of its hour of history (default a minute).
	PageProbeEvery, PageBucket time.Duration
	// Logger receives one line per job and the shim's warnings (default: slog.Default()).
	Logger *slog.Logger
}

// withDefaults checks c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Upstream == nil || c.Upstream.Host == "" || (c.Upstream.Scheme != "http" && c.Upstream.Scheme != "https") {
		return c, errors.New("shim: the upstream must be an http:// or https:// URL, such as http://127.0.0.1:8188")
	}
	if c.Profile.Name == "" {
		return c, fmt.Errorf("shim: no profile (want one of %s)", ProfileNames)
	}
	if c.MaxBody < 0 || c.MaxQueue < 0 || c.QueueTimeout < 0 || c.MaxBuffered < 0 || c.HeaderTimeout < 0 || c.KeepAliveTimeout < 0 {
		return c, errors.New("shim: max body, max buffered, max queue, queue, header and keep-alive timeouts cannot be negative")
	}
	if c.Name == "" {
		c.Name = c.Profile.Name
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	switch {
	case c.MaxBuffered == 0:
		c.MaxBuffered = max(DefaultMaxBuffered, c.MaxBody)
	case c.MaxBuffered < c.MaxBody:
		return c, fmt.Errorf("shim: max buffered (%d bytes) is below max body (%d bytes), so the largest body could never be read; raise --max-buffered or lower --max-body",
			c.MaxBuffered, c.MaxBody)
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	switch {
	case c.BodyTimeout == 0:
		c.BodyTimeout = DefaultBodyTimeout
	case c.BodyTimeout < 0:
		c.BodyTimeout = 0
	}
	if c.KeepAliveTimeout == 0 {
		c.KeepAliveTimeout = DefaultKeepAliveTimeout
	}
	switch {
	case c.MaxHold == 0:
		c.MaxHold = c.Profile.defaultMaxHold
	case c.MaxHold < 0:
		c.MaxHold = 0
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.WatchInterval <= 0 {
		c.WatchInterval = DefaultWatchInterval
	}
	if c.IdlePollInterval <= 0 {
		c.IdlePollInterval = DefaultIdlePollInterval
	}
	if c.VRAMTimeout <= 0 {
		c.VRAMTimeout = DefaultVRAMTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for i := range c.GPURoutes {
		c.GPURoutes[i].hold = c.Profile.extraHold
	}
	return c, nil
}
