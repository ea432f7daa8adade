package statuspage

import (
	"embed"
	"net/http"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// Paths the Handler answers.
const (
	// PathPage is the page itself.
	PathPage = "/gpulock/"
	// PathEvents streams the status as server-sent events.
	PathEvents = "/gpulock/events"
	pathScript = "/gpulock/page.js"
	pathStyle  = "/gpulock/page.css"
	pathIcon   = "/gpulock/favicon.svg"
	pathBare   = "/gpulock"
)

// ContentSecurityPolicy is sent with the page and its assets: only the
// page's own script, style and connections, no framing, no forms.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Defaults of Options.
const (
	// DefaultPushEvery is how often a stream pushes the status with no news.
	DefaultPushEvery = time.Second
	// DefaultMaxStreams bounds the open event streams; more clients poll.
	DefaultMaxStreams = 64
)

// Options tune a Handler.
type Options struct {
	// PushEvery is how often each stream pushes the status when nothing
	// called Notify (default DefaultPushEvery).
	PushEvery time.Duration
	// MaxStreams bounds the event streams open at once; a client over it
	// gets 503 and the page falls back to polling (default DefaultMaxStreams).
	MaxStreams int
}

// Handler serves the page, its assets and its event stream. Status is the
// data every event carries: the same value /gpulock/status serves to the
// same request (so that masking by caller applies alike).
type Handler struct {
	status func(*http.Request) (any, error)
	opts   Options
	slots  chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed by Notify, then replaced
	closed  chan struct{}
	once    sync.Once
}

// NewHandler returns a Handler whose events carry status(r), r being the stream's request.
func NewHandler(status func(*http.Request) (any, error), opts Options) *Handler {
	if opts.PushEvery <= 0 {
		opts.PushEvery = DefaultPushEvery
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	return &Handler{status: status, opts: opts, slots: make(chan struct{}, opts.MaxStreams),
		changed: make(chan struct{}), closed: make(chan struct{})}
}

// Serves reports whether the Handler answers path.
func Serves(path string) bool {
	switch path {
	case PathPage, PathEvents, pathScript, pathStyle, pathIcon, pathBare:
		return true
	}
	return false
}

// ServeHTTP serves the page (GET only: the page changes nothing).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "gpulock: the status page answers GET only", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	switch r.URL.Path {
	case pathBare:
		http.Redirect(w, r, PathPage, http.StatusMovedPermanently)
	case PathPage:
		h.serveAsset(w, "assets/index.html", "text/html; charset=utf-8")
	case pathScript:
		h.serveAsset(w, "assets/page.js", "text/javascript; charset=utf-8")
	case pathStyle:
		h.serveAsset(w, "assets/page.css", "text/css; charset=utf-8")
	case pathIcon:
		h.serveAsset(w, "assets/favicon.svg", "image/svg+xml")
	case PathEvents:
		h.serveEvents(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) serveAsset(w http.ResponseWriter, name, contentType string) {
	b, err := assets.ReadFile(name)
	if err != nil {
		http.Error(w, "statuspage: asset missing from the binary: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	// The assets change only with the binary; revalidating is cheap.
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// Notify tells the open streams that the status changed, so that they
// push it now rather than at their next tick.
func (h *Handler) Notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *Handler) changes() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// Close ends every open stream and refuses new ones, so that an
// http.Server's Shutdown does not wait for them (register it with
// RegisterOnShutdown). It is safe to call twice.
func (h *Handler) Close() {
	h.once.Do(func() { close(h.closed) })
}
