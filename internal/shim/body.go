package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Reasons a request's body is refused, the values of the "reason" label of
// gpulock_shim_bad_requests_total and the error types of the answers.
const (
	badBody      = "bad_body"       // 400: malformed chunking, cut short, a read error
	bodyTimeout  = "body_timeout"   // 408: not all there within --body-timeout
	bodyTooLarge = "body_too_large" // 413: over --max-body
)

// firstBodyChunk is the first reservation for a body of unknown length
// (chunked): later ones double what is held, up to MaxBody.
const firstBodyChunk = 64 << 10

// readBody reads a GPU request's whole body, bounded by MaxBody, into
// memory reserved from the budget through a. It reads to the end: Go's
// server notices a client that leaves only once the body is read.
func (s *Shim) readBody(w http.ResponseWriter, r *http.Request, a *admission) ([]byte, error) {
	if !hasBody(r) {
		return nil, nil
	}
	src := http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	if r.ContentLength > 0 { // reserved at admission
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(src, buf); err != nil {
			return nil, err
		}
		if err := expectEOF(src); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := make([]byte, 0)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= s.cfg.MaxBody {
				// Full: only the end of the body may follow.
				if err := expectEOF(src); err != nil {
					return nil, err
				}
				return buf, nil
			}
			more := min(max(int64(cap(buf)), firstBodyChunk), s.cfg.MaxBody-int64(cap(buf)))
			if !a.grow(more) {
				return nil, errBufferFull
			}
			grown := make([]byte, len(buf), int64(cap(buf))+more)
			copy(grown, buf)
			buf = grown
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// expectEOF reads what follows a body's expected end: nothing but EOF.
func expectEOF(r io.Reader) error {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if errors.Is(err, io.EOF) {
			if n > 0 {
				return errors.New("shim: the body goes on past its length")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return errors.New("shim: the body goes on past its length")
		}
	}
}

// refuseBody answers a request whose body could not be read, blaming the
// client's body, and logs and counts it. The connection is closed: what
// is left of the body cannot be told from a next request.
func (s *Shim) refuseBody(w http.ResponseWriter, r *http.Request, err error) {
	code, reason, msg := http.StatusBadRequest, badBody,
		fmt.Sprintf("gpulock: the request body could not be read (%v); nothing was forwarded; check the client's Content-Length or chunked encoding", err)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		code, reason, msg = http.StatusRequestEntityTooLarge, bodyTooLarge,
			fmt.Sprintf("gpulock: the request body is over %d bytes; nothing was forwarded; raise the shim's --max-body", s.cfg.MaxBody)
	case errors.Is(err, os.ErrDeadlineExceeded):
		code, reason, msg = http.StatusRequestTimeout, bodyTimeout,
			fmt.Sprintf("gpulock: the request body did not arrive within %s; nothing was forwarded; send it faster or raise the shim's --body-timeout", s.cfg.BodyTimeout)
	}
	w.Header().Set("Connection", "close")
	writeError(w, code, reason, msg)
	s.metrics.badRequests.WithLabelValues(reason).Inc()
	s.cfg.Logger.Warn("refused a request body", "service", s.cfg.Name, "route", r.Method+" "+r.URL.Path,
		"remote", r.RemoteAddr, "status", code, "reason", reason, "err", err)
}

// passThrough proxies a request that is no GPU work. Its body streams to
// the backend, read within BodyTimeout; when it cannot be read, the client
// is told so (proxyError) rather than that the backend is down.
func (s *Shim) passThrough(w http.ResponseWriter, r *http.Request) {
	if hasBody(r) {
		cb := newClientBody(r.Body, s.bodyDeadline(w, r))
		// A copy of r: net/http keeps r.Body to finish the request. The
		// context carries cb to proxyError, as ReverseProxy wraps the body.
		out := r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, cb))
		out.Body = cb
		r = out
	}
	s.proxy.ServeHTTP(w, r)
}

// proxyError answers a pass-through request that the proxy could not
// complete: the client's body if it could not be read, else the backend.
func (s *Shim) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if cb, ok := r.Context().Value(clientBodyKey{}).(*clientBody); ok {
		if r.Context().Err() != nil {
			// A body that fails cancels the request as it fails, so the
			// proxy may give up before the transport's reader returns
			// with the body's error: wait for it, briefly.
			cb.settledWithin(bodySettleWait)
		}
		if bodyErr := cb.failed(); bodyErr != nil {
			s.refuseBody(w, r, bodyErr)
			return
		}
	}
	if r.Context().Err() != nil {
		return // the client left
	}
	s.writeUpstreamError(w, r, err)
}

// bodySettleWait bounds the wait for a pass-through body's reader to report
// how the body ended, once the request is cancelled: net/http's body fails
// as soon as its connection does, so only a transport busy writing to a
// stalled backend makes it last.
const bodySettleWait = time.Second

// clientBodyKey is the context key of a pass-through request's clientBody.
type clientBodyKey struct{}

// clientBody is a pass-through request's body on its way to the backend:
// it lifts the body's read deadline at its end and remembers why it
// failed, if it did.
type clientBody struct {
	io.ReadCloser
	lift func()

	mu      sync.Mutex
	err     error
	ended   bool
	settled chan struct{} // closed at the body's end or its failure
}

// newClientBody wraps a pass-through request's body; lift lifts its read
// deadline.
func newClientBody(body io.ReadCloser, lift func()) *clientBody {
	return &clientBody{ReadCloser: body, lift: lift, settled: make(chan struct{})}
}

// Read reads the client's body.
func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		b.lift()
		err = io.EOF
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ended {
		b.ended = true
		if err != io.EOF {
			b.err = err
		}
		close(b.settled)
	}
	return n, err
}

// settledWithin waits until the body has ended or failed, at most d.
func (b *clientBody) settledWithin(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.settled:
	case <-t.C:
	}
}

// failed returns the error that reading the body met, if any.
func (b *clientBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
