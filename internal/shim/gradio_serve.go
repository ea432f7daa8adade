package shim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/coder/websocket"
)

// serveGradioQueue serves the gradio queue websocket: it dials the
// backend's /queue/join first (so that a backend that is down or refuses
// gets its answer passed on before the upgrade), accepts the client's
// websocket, and relays until either side ends. It returns once both
// sockets are closed and any lock taken is released.
func (s *Shim) serveGradioQueue(w http.ResponseWriter, r *http.Request) {
	backend, resp, err := s.dialGradio(r.Context(), r)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client left
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// The backend answered, but not with a websocket (a 403 of
			// A1111's --gradio-auth, say): pass its answer on.
			if ct := resp.Header.Get("Content-Type"); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, io.LimitReader(resp.Body, 1024))
			return
		}
		writeError(w, http.StatusBadGateway, "upstream_unreachable",
			fmt.Sprintf("gpulock: %s did not take the websocket; is it running?", s.viewFor(r).backend(s.cfg.Upstream.Redacted(), err)))
		return
	}
	var subprotocols []string
	if p := backend.Subprotocol(); p != "" {
		subprotocols = []string{p}
	}
	// A1111 checks no origin on this socket, and a browser on the shim's
	// address sends the shim's: accept any, as the backend would.
	// Compression stays off: the client's Sec-WebSocket-Extensions offer
	// is declined, and the frames are relayed as read.
	client, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       subprotocols,
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		backend.CloseNow()
		return // Accept has answered
	}
	client.SetReadLimit(s.cfg.MaxBody)
	rl := &gradioRelay{
		s:        s,
		r:        r,
		client:   client,
		backend:  backend,
		events:   make(chan wsEvent),
		done:     make(chan struct{}),
		acquired: make(chan acquireResult, 1),
	}
	rl.run()
}

// dialGradio opens the backend's websocket at r's path and query, with the
// client's Host, Origin, Cookie and Authorization headers (A1111 may use
// auth cookies) and the X-Forwarded headers.
func (s *Shim) dialGradio(ctx context.Context, r *http.Request) (*websocket.Conn, *http.Response, error) {
	pr := &httputil.ProxyRequest{In: r, Out: r.Clone(ctx)}
	pr.SetURL(s.cfg.Upstream)
	pr.Out.Header = http.Header{}
	pr.SetXForwarded()
	for _, k := range []string{"Origin", "Cookie", "Authorization", "User-Agent", "Accept-Language"} {
		if v := r.Header.Values(k); len(v) > 0 {
			pr.Out.Header[k] = v
		}
	}
	var subprotocols []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				subprotocols = append(subprotocols, p)
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, gradioDialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, pr.Out.URL.String(), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: s.transport},
		HTTPHeader:      pr.Out.Header,
		Host:            r.Host,
		Subprotocols:    subprotocols,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(s.cfg.MaxBody)
	return conn, resp, nil
}
