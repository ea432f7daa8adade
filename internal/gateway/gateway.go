package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/shim"
)

// Defaults of Config.
const (
	// DefaultPoll is how soon a waiting job's state is first read again, on
	// top of the pub/sub wake-up; the reads then back off to half the lease
	// (pollCap).
	DefaultPoll = 20 * time.Millisecond
	// DefaultRetryAfter is sent with every 503.
	DefaultRetryAfter = 5 * time.Second
	// DefaultMaxBody bounds a GPU request's body.
	DefaultMaxBody int64 = 256 << 20
)

// Config is what a Gateway needs.
type Config struct {
	// Profile is "comfyui" or "a1111".
	Profile string
	// Store is the cluster's Redis.
	Store *cluster.Store
	// MaxQueue bounds the jobs waiting in the profile's line (0: no bound).
	MaxQueue int
	// QueueTimeout bounds a job's wait in line (0: no bound); then 503.
	QueueTimeout time.Duration
	// Lease is the shims' lease: a shim that could not be reached is left
	// out of matches that long (default cluster.DefaultLease).
	Lease time.Duration
	// Reserve is how long a matched GPU waits for its job (default
	// cluster.DefaultReserve).
	Reserve time.Duration
	// Poll defaults to DefaultPoll; RetryAfter to DefaultRetryAfter.
	Poll, RetryAfter time.Duration
	// MaxBody bounds a GPU request's body (default DefaultMaxBody).
	MaxBody int64
	// MaxUpload bounds a ComfyUI upload, which Redis keeps (default
	// MaxUploadBytes).
	MaxUpload int64
	// MaxKeptUploads bounds the total bytes of the uploads Redis keeps
	// (default MaxKeptUploadBytes); the oldest are evicted first.
	MaxKeptUploads int64
	// Turns says how the line shares the GPUs between clients, as the
	// shim's --fair, --priority, --priority-header and --trust-proxy do:
	// a job's client is its ComfyUI client_id, else X-GPULock-Client, else
	// its address (see shim.Turns.TurnOf).
	Turns shim.Turns
	// Aging is the aging step and round of fair turns (default
	// gpulock.DefaultAging; see cluster.Turn).
	Aging time.Duration
	// Logger receives one line per job (default: slog.Default()).
	Logger *slog.Logger
	// AllowGlobalInterrupt lets a ComfyUI POST /interrupt that names no
	// prompt and no client stop what runs on every machine (interrupt.go).
	AllowGlobalInterrupt bool
	// AllowFree lets ComfyUI's POST /free reach every machine (free.go).
	AllowFree bool
	// PlainDispatch turns model-aware dispatch off: a job takes the GPU
	// free longest, whatever model it last loaded (model.go).
	PlainDispatch bool
}

// Gateway is the cluster's HTTP front for one profile. Make one with New,
// call Start, serve it as an http.Handler, and Close it.
type Gateway struct {
	cfg     Config
	client  *http.Client
	wake    *wakeups
	page    *page      // /gpulock/ and /gpulock/status (page.go)
	objInfo objectInfo // the machines' node classes, for checking prompts
	hub     *wsHub     // ComfyUI websockets' one Redis subscription (comfywshub.go)

	id     string          // the gateway's lease in Redis, owner of its prompts
	ctx    context.Context // ends at Close: background jobs stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	metrics *gatewayMetrics // /gpulock/metrics (metrics.go)

	inHandMu sync.Mutex
	inHand   map[string]int // prompts a goroutine here answers for (inhand.go)

	dispatches atomic.Uint64 // dispatches so far, for their tokens (dispatchToken)
}

// New checks cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	if err := checkProfile(cfg.Profile); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("gateway: no Redis store")
	}
	if cfg.MaxQueue < 0 || cfg.QueueTimeout < 0 {
		return nil, errors.New("gateway: max queue and queue timeout cannot be negative")
	}
	if cfg.Lease <= 0 {
		cfg.Lease = cluster.DefaultLease
	}
	if cfg.Reserve <= 0 {
		cfg.Reserve = cluster.DefaultReserve
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = MaxUploadBytes
	}
	if cfg.MaxKeptUploads <= 0 {
		cfg.MaxKeptUploads = MaxKeptUploadBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{cfg: cfg, client: &http.Client{Transport: tr}, wake: newWakeups(), id: newJobID(), ctx: ctx, cancel: cancel,
		inHand: map[string]int{}}
	g.page, g.metrics = newPage(g), newGatewayMetrics(g)
	g.hub = newWSHub(cfg.Store)
	return g, nil
}

// Start listens for match hints, and keeps the gateway's lease (adopting
// the prompts of gateways that are gone), in the background until Close.
func (g *Gateway) Start() {
	// The lease exists before the first prompt it owns (retried below).
	ctx, cancel := context.WithTimeout(g.ctx, time.Second)
	_ = g.cfg.Store.RenewGateway(ctx, g.id, g.cfg.Lease)
	cancel()
	g.wg.Go(func() { g.wake.listen(g.ctx, g.cfg.Store) })
	g.wg.Go(g.keepLease)
}

// Close stops the background work: ComfyUI prompts still in line keep
// their place in Redis and another gateway adopts them (those being
// dispatched finish their dispatch); it ends the gateway's lease and
// closes idle connections. Requests being served are the http.Server's to
// drain.
func (g *Gateway) Close() {
	g.cancel()
	g.page.handler.Close()
	g.wg.Wait()
	g.hub.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = g.cfg.Store.DropGateway(ctx, g.id)
	g.client.CloseIdleConnections()
}

// ServeHTTP queues GPU work in the cluster and passes the rest to a live
// machine.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.serveExtra(w, r) { // extra.go: prompt status, interrupt, free, sticky state
		return
	}
	if g.page.serve(w, r) || g.metrics.serve(w, r) {
		return
	}
	if g.isOptions(r) {
		g.serveOptions(w, r) // a1111options.go
		return
	}
	if isJob(g.cfg.Profile, r.Method, r.URL.Path) {
		g.serveJob(w, r)
		return
	}
	if g.cfg.Profile == "comfyui" && g.serveComfy(w, r) {
		return
	}
	if g.cfg.Profile == "a1111" && followsClientJob(r) {
		g.progress(w, r)
		return
	}
	g.passAny(w, r)
}
