package shim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// forwarded is what became of a forwarded GPU request.
type forwarded struct {
	// status is the backend's status code, or 0 if it was not reached.
	status int
	// err is why the backend could not be reached, if it was not.
	err error
}

// forward sends a GPU request, whose body has been read already, to the
// backend and copies the answer to the client. The upstream request lives
// as long as ctx: pass a context detached from the client's to let the job
// finish after the client leaves. It returns once the answer is copied, or
// the client has gone and the backend has answered.
func (s *Shim) forward(w http.ResponseWriter, r *http.Request, body []byte, ctx context.Context) (res forwarded) {
	out := r.Clone(ctx)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	out.TransferEncoding = nil
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	proxy := s.newProxy(
		func(resp *http.Response) error { res.status = resp.StatusCode; return nil },
		func(w http.ResponseWriter, _ *http.Request, err error) {
			res.err = err
			if errors.Is(context.Cause(ctx), errMaxHold) {
				writeError(w, http.StatusGatewayTimeout, outcomeMaxHold, s.maxHoldMessage())
				return
			}
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return // the client left (generic requests): nobody to answer
			}
			s.writeUpstreamError(w, r, err)
		})
	defer func() {
		// ReverseProxy panics with http.ErrAbortHandler when the client
		// goes away while the answer is copied: the backend answered, so
		// the job is over. Anything else is a real panic.
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			panic(p)
		}
	}()
	proxy.ServeHTTP(hideCloseNotify{w}, out)
	return res
}

// hideCloseNotify hides the deprecated http.CloseNotifier of a
// ResponseWriter: ReverseProxy cancels the upstream request through it when
// the request's context has no Done channel, which is what a context
// detached from the client has. Unwrap keeps Flush and the rest reachable.
type hideCloseNotify struct{ http.ResponseWriter }

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (h hideCloseNotify) Unwrap() http.ResponseWriter { return h.ResponseWriter }
