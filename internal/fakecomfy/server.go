package fakecomfy

import (
	"encoding/json"
	"net/http"
	"sync"
)

// Server is a fake ComfyUI. Create it with New, serve Handler on any
// listener, and Close it when done. All methods are safe for concurrent use.
type Server struct {
	cfg        Config
	handler    http.Handler
	wake       chan struct{} // worker: something to do
	quit       chan struct{} // closed by Close
	closeOnce  sync.Once
	workerDone chan struct{}
	sockets    sync.WaitGroup // websocket handlers

	mu          sync.Mutex
	closed      bool
	nextNumber  float64
	seq         int64
	pending     []*queueItem
	running     *queueItem
	history     map[string]*historyEntry
	historyIDs  []string // oldest first
	freePending bool
	loadedModel string            // the last model a loader node loaded (ModelLoad)
	userdata    map[string][]byte // userdata.go
	settings    map[string]any
	counters    Counters
	images      int
	uploads     map[string]Upload // by path in the input folder
	clients     map[*wsClient]struct{}
}

// Counters counts what a Server did.
type Counters struct {
	// Queued counts prompts accepted into the queue.
	Queued int64
	// Run counts prompts the worker started.
	Run int64
	// Succeeded, Failed and Interrupted count finished prompts by outcome.
	Succeeded, Failed, Interrupted int64
	// Frees counts model unloads done for POST /free.
	Frees int64
	// ModelLoads counts loads of a model (with Config.ModelLoad) that
	// was not the one loaded.
	ModelLoads int64
}

// New returns a running fake ComfyUI; its worker goroutine runs until Close.
func New(cfg Config) (*Server, error) {
	s := &Server{
		cfg:        cfg.withDefaults(),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		workerDone: make(chan struct{}),
		history:    map[string]*historyEntry{},
		uploads:    map[string]Upload{},
		clients:    map[*wsClient]struct{}{},
	}
	s.handler = checkOrigin(s.routes())
	go s.work()
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// ServeHTTP serves one request; Server is itself an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close stops the worker (a running prompt ends as interrupted), closes every
// websocket and waits for their handlers to return. Later requests still get
// answers, but queued prompts never run. Close is safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		<-s.workerDone
		s.sockets.Wait()
	})
	return nil
}

// Counters returns a snapshot of the server's counters.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters
}

// signal wakes the worker without blocking.
func (s *Server) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// routes returns the mux with every route bare and under /api.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		mux.HandleFunc(method+" /api"+path, h)
	}
	handle("GET", "/{$}", s.handleIndex)
	handle("GET", "/ws", s.handleWebsocket)
	handle("POST", "/prompt", s.handlePostPrompt)
	handle("GET", "/prompt", s.handleGetPrompt)
	handle("GET", "/queue", s.handleGetQueue)
	handle("POST", "/queue", s.handlePostQueue)
	handle("GET", "/history", s.handleGetHistory)
	handle("POST", "/history", s.handlePostHistory)
	handle("GET", "/history/{id}", s.handleGetHistoryItem)
	handle("POST", "/interrupt", s.handleInterrupt)
	handle("POST", "/free", s.handleFree)
	handle("GET", "/system_stats", s.handleSystemStats)
	handle("GET", "/object_info", s.handleObjectInfo)
	handle("GET", "/object_info/{class}", s.handleObjectInfo)
	handle("GET", "/embeddings", s.handleEmptyList)
	handle("GET", "/extensions", s.handleEmptyList)
	handle("POST", "/upload/image", s.handleUploadImage)
	handle("POST", "/upload/mask", s.handleUploadImage)
	handle("GET", "/view", s.handleView)
	handle("POST", "/userdata/{file}", s.handlePostUserdata)
	handle("GET", "/userdata/{file}", s.handleGetUserdata)
	handle("GET", "/userdata", s.handleListUserdata)
	handle("GET", "/settings", s.handleGetSettings)
	handle("GET", "/settings/{id}", s.handleGetSetting)
	handle("POST", "/settings/{id}", s.handlePostSetting)
	return mux
}

// handleEmptyList answers [] for list routes the fake has nothing for.
func (s *Server) handleEmptyList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, json.RawMessage("[]"))
}
