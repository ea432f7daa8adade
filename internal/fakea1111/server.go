package fakea1111

import (
	"errors"
	"net/http"
	"sync"
	"time"
)

// ErrClosed is returned for jobs started after Close.
var ErrClosed = errors.New("fakea1111: server closed")

// Server is a fake A1111 API. Create it with New, serve Handler on any
// listener, and Close it when done. All methods are safe for concurrent use.
type Server struct {
	cfg     Config
	handler http.Handler
	queue   fifoLock // A1111's queue_lock
	quit    chan struct{}
	once    sync.Once
	jobs    sync.WaitGroup // job goroutines

	mu         sync.Mutex
	closed     bool
	state      progressState
	current    *runningJob // job holding the queue lock
	loaded     bool        // checkpoint weights on the GPU
	checkpoint string
	options    map[string]any // other options set by POST /sdapi/v1/options
	counters   Counters
	nextID     int64
	tasks      taskBook // the gradio UI's task ids
}

// Counters counts what a Server did.
type Counters struct {
	// Jobs counts jobs that got the queue lock: generations, extras,
	// interrogations and local jobs (model loads excluded).
	Jobs int64
	// Succeeded, Interrupted and Failed count finished jobs by outcome.
	Succeeded, Interrupted, Failed int64
	// ModelLoads counts checkpoint loads (option changes, reloads and
	// reloads before a job after an unload).
	ModelLoads int64
	// Abandoned counts requests whose client left before the answer; their
	// jobs ran on.
	Abandoned int64
}

// New returns a running fake A1111 with its checkpoint counted as loaded
// (but not yet resident on the GPU until its first job).
func New(cfg Config) (*Server, error) {
	s := &Server{
		cfg:        cfg.withDefaults(),
		quit:       make(chan struct{}),
		loaded:     true,
		checkpoint: sdModels[0].Title,
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// ServeHTTP serves one request; Server is itself an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close makes the running job stop at its next step (as interrupted), lets
// queued jobs finish at once, and waits for every job goroutine. Later jobs
// fail with ErrClosed. Close is safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		s.jobs.Wait()
	})
	return nil
}

// Counters returns a snapshot of the server's counters.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters
}

// routes returns the API's mux.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("POST /sdapi/v1/txt2img", s.handleGenerate("scripts_txt2img", false))
	mux.HandleFunc("POST /sdapi/v1/img2img", s.handleGenerate("scripts_img2img", true))
	mux.HandleFunc("POST /sdapi/v1/extra-single-image", s.handleExtraSingle)
	mux.HandleFunc("POST /sdapi/v1/extra-batch-images", s.handleExtraBatch)
	mux.HandleFunc("POST /sdapi/v1/interrogate", s.handleInterrogate)
	mux.HandleFunc("GET /sdapi/v1/progress", s.handleProgress)
	mux.HandleFunc("POST /sdapi/v1/interrupt", s.handleInterrupt)
	mux.HandleFunc("POST /sdapi/v1/skip", s.handleInterrupt)
	mux.HandleFunc("POST /sdapi/v1/unload-checkpoint", s.handleUnload)
	mux.HandleFunc("POST /sdapi/v1/reload-checkpoint", s.handleReload)
	mux.HandleFunc("GET /sdapi/v1/options", s.handleGetOptions)
	mux.HandleFunc("POST /sdapi/v1/options", s.handlePostOptions)
	mux.HandleFunc("GET /sdapi/v1/sd-models", s.handleSDModels)
	mux.HandleFunc("GET /sdapi/v1/samplers", s.handleSamplers)
	mux.HandleFunc("GET /sdapi/v1/memory", s.handleMemory)
	s.gradioRoutes(mux)
	return mux
}

// indexHTML is the page GET / answers with.
const indexHTML = `<!DOCTYPE html>
<html><head><title>Stable Diffusion</title></head>
<body><h1>Stable Diffusion web UI (fake)</h1><p>gpulock fakea1111 test server.</p></body></html>
`

// handleIndex answers GET / with a small HTML page.
func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(indexHTML))
}

// wait sleeps d; it returns notStopped when the full time passed, or why
// it returned early (interrupt, broken by an unload, or server closing,
// which counts as an interrupt).
func (s *Server) wait(rj *runningJob, d time.Duration) stopReason {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return notStopped
	case <-rj.interrupt:
		return stoppedInterrupt
	case <-rj.broken:
		return stoppedBroken
	case <-s.quit:
		return stoppedInterrupt
	}
}
