package shim

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Shim is the reverse proxy in front of one backend. Make one with New,
// serve it with Serve (or use it as an http.Handler after Start), and stop
// it with Shutdown.
type Shim struct {
	cfg       Config
	routes    []Route
	lock      *gpulock.Lock
	transport *http.Transport
	client    *http.Client
	proxy     *httputil.ReverseProxy
	errorLog  *log.Logger
	line      *line
	watch     *promptWatch // comfyui only
	metrics   *metrics
	vram      *vramHandoff
	cover     *cover
	inflight  *inflight
	budget    *budget
	detailKey []byte // hashes request ids in masked pages (detail.go)
	page      *page

	stopOnce sync.Once
	cancel   context.CancelFunc
	unserve  func() error
	wg       sync.WaitGroup
}

// New checks cfg and returns a Shim. It touches neither the backend nor the
// lock until Start.
func New(cfg Config) (*Shim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	lock, err := gpulock.New(cfg.GPU, append([]gpulock.Option{gpulock.WithDir(cfg.LockDir), gpulock.WithService(cfg.Name),
		gpulock.WithCommand("gpulock shim " + cfg.Profile.Name + " " + cfg.Upstream.Redacted()),
		gpulock.WithFairTurns(!cfg.Turns.ArrivalOrder)}, backendOptions(cfg)...)...)
	if err != nil {
		return nil, err
	}
	s := &Shim{
		cfg:       cfg,
		routes:    append(append([]Route(nil), cfg.Profile.routes...), cfg.GPURoutes...),
		lock:      lock,
		transport: newTransport(),
		errorLog:  slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		line:      newLine(cfg.MaxQueue),
		budget:    &budget{max: cfg.MaxBuffered},
		detailKey: newDetailKey(),
	}
	s.client = &http.Client{Transport: s.transport, Timeout: time.Minute}
	// r is the outgoing request, marked by rewrite when its caller
	// gets masked pages (markMasked).
	s.proxy = s.newProxy(nil, s.proxyError)
	if cfg.Profile.Name == "comfyui" {
		s.watch = newPromptWatch(s)
	}
	s.metrics = newMetrics(s)
	s.vram = &vramHandoff{s: s, enabled: cfg.FreeOnHandoff}
	s.cover = &cover{s: s}
	s.inflight = newInflight()
	s.page = newPage(s)
	return s, nil
}

// Lock returns the GPU lock the shim takes.
func (s *Shim) Lock() *gpulock.Lock { return s.lock }

// Paths the shim answers itself.
const (
	// PathStatus serves the GPU's status (the schema of gpulock status
	// --json) with this shim's line and counters.
	PathStatus = "/gpulock/status"
	// PathMetrics serves Prometheus metrics.
	PathMetrics = "/gpulock/metrics"
)

// ServeHTTP passes non-GPU requests straight through and queues GPU work.
func (s *Shim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.servePage(w, r) {
		return
	}
	r = s.withDispatch(r) // cluster mode: member.go
	if s.isGradioQueue(r) {
		s.serveGradioQueue(w, r)
		return
	}
	switch r.URL.Path {
	case PathStatus:
		s.serveStatus(w, r)
		return
	case PathMetrics:
		s.metrics.handler().ServeHTTP(w, r)
		return
	}
	if route, ok := classify(s.routes, r); ok {
		s.serveGPU(w, r, route)
		return
	}
	s.passThrough(w, r)
}

// Start starts the shim's background work: watching ComfyUI for finished
// prompts, and watching the backend for GPU work it starts on its own, for
// which the shim holds the lock on its behalf so that other services wait.
// Shutdown stops it.
func (s *Shim) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// Tell gpulock exec that this GPU is served, so that it can warn
	// against running a web UI under it.
	if stop, err := s.lock.Serve(); err == nil {
		s.unserve = stop
	} else {
		s.cfg.Logger.Warn("cannot mark the GPU as served by a shim", "err", err)
	}
	if s.cfg.Member != nil {
		s.wg.Go(func() { s.cfg.Member.Run(ctx, s.lock, s.Waiting) }) // cluster mode: member.go
	}
	s.wg.Go(func() { s.page.run(ctx) })
	switch s.cfg.Profile.Name {
	case "comfyui":
		s.wg.Go(func() { s.watch.listen(ctx) })
		s.wg.Go(func() { s.watch.run(ctx) })
		s.watch.poke() // a busy ComfyUI at start-up is covered at once
	case "a1111":
		s.wg.Go(func() { s.cover.watchA1111(ctx) })
	}
}

// Shutdown stops the shim gracefully: requests in line are answered 503,
// new GPU requests too, and the shim's running jobs (forwarded requests,
// ComfyUI prompts, UI jobs) get until ctx ends (bounded by DrainTimeout) to
// finish. ComfyUI prompts still running then are interrupted, and their
// lock is released once the backend reports idle (bounded by IdleTimeout)
// or anyway; a prompt whose forwarding ends after that is interrupted and
// released at once. Stopping the listener is the caller's (Serve does it).
func (s *Shim) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.line.drain()
		ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
		defer cancel()
		select {
		case <-s.inflight.idle():
		case <-ctx.Done():
			s.cfg.Logger.Warn("jobs still running at shutdown", "count", s.inflight.count())
			if s.watch != nil && s.watch.count() > 0 {
				s.watch.interruptAll(context.WithoutCancel(ctx))
				if e := s.waitIdle(context.WithoutCancel(ctx)); e != nil {
					err = e
				}
			}
		}
		if s.watch != nil {
			s.watch.stop()
			s.watch.releaseAll(outcomeShutdown)
		}
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		s.page.close()
		s.cover.stop()
		if s.unserve != nil {
			_ = s.unserve()
		}
		s.transport.CloseIdleConnections()
	})
	return err
}

// Serve serves the shim on ln until ctx ends, then shuts down gracefully:
// the listener closes, requests in line get 503, and running jobs get up to
// DrainTimeout to finish.
func (s *Shim) Serve(ctx context.Context, ln net.Listener) error {
	srv := s.newServer()
	srv.RegisterOnShutdown(s.page.close) // event streams would hold up the drain
	s.Start()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		_ = s.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	s.line.drain() // before the handlers' answers, so queued requests get 503 at once
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	shutErr := srv.Shutdown(drainCtx)
	if err := s.Shutdown(drainCtx); err != nil && shutErr == nil {
		shutErr = err
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return shutErr
}

// Waiting returns the number of GPU requests in line in this shim.
func (s *Shim) Waiting() int { return s.line.len() }
