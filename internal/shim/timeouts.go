package shim

import (
	"net/http"
	"sync"
	"time"
)

// newServer returns the http.Server that Serve runs. It sets no
// ReadTimeout or WriteTimeout: those would bound a whole request, and a GPU
// request's wait in line, a held A1111 request and a websocket may last
// hours. The body's reading is bounded per request instead (bodyDeadline).
func (s *Shim) newServer() *http.Server {
	srv := &http.Server{Handler: s}
	s.setTimeouts(srv)
	return srv
}

// setTimeouts applies the shim's header and keep-alive timeouts and its
// error log to srv.
func (s *Shim) setTimeouts(srv *http.Server) {
	srv.ReadHeaderTimeout = s.cfg.HeaderTimeout
	srv.IdleTimeout = s.cfg.KeepAliveTimeout
	srv.ErrorLog = s.errorLog
}

// bodyDeadline bounds the reading of r's body by BodyTimeout: the
// connection's read deadline is set now, and the returned function lifts
// it once the body is read, so that what follows (the wait in line, a held
// request, the backend's answer) is not timed as the client's reading. A
// body that fails is left under the deadline: net/http may still read the
// rest of it to reuse the connection. A request without a body, such as a
// websocket's upgrade, gets no deadline.
func (s *Shim) bodyDeadline(w http.ResponseWriter, r *http.Request) (lift func()) {
	if s.cfg.BodyTimeout <= 0 || !hasBody(r) {
		return func() {}
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)); err != nil {
		return func() {} // not served by net/http's server: nothing to bound
	}
	return sync.OnceFunc(func() { _ = rc.SetReadDeadline(time.Time{}) })
}

// hasBody reports whether r comes with a body to read.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}
