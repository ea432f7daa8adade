package shim

import (
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Transport tuning: every request goes to one upstream host, so the idle
// pool per host must be large (Go's default keeps 2, which made a plain proxy
// reach a fifth of nginx's requests per second here).
const (
	maxIdleConns       = 1024
	idleConnTimeout    = 90 * time.Second
	dialTimeout        = 5 * time.Second
	tcpKeepAlive       = 30 * time.Second
	expectContinueWait = time.Second
)

// newTransport returns the Transport the shim uses for its one upstream. It
// sets no response timeout: GPU jobs answer when they are done.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // the upstream is local: never an environment proxy
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}).DialContext,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConns,
		IdleConnTimeout:       idleConnTimeout,
		ExpectContinueTimeout: expectContinueWait,
		DisableCompression:    true, // pass the client's Accept-Encoding and the answer's encoding through
		ForceAttemptHTTP2:     false,
	}
}

// rewrite sends a request to the upstream, keeping the client's Host
// header: ComfyUI refuses a loopback Host that does not match the Origin.
func (s *Shim) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(s.cfg.Upstream)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	markMasked(pr)
}

// newProxy returns a ReverseProxy to the upstream with the shim's hooks.
func (s *Shim) newProxy(modify func(*http.Response) error, onError func(http.ResponseWriter, *http.Request, error)) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      s.transport,
		ModifyResponse: modify,
		ErrorHandler:   onError,
		ErrorLog:       s.errorLog,
		BufferPool:     copyBuffers,
	}
}

// copyBufferSize is the size of the buffers that copy answers to clients,
// as ReverseProxy's own.
const copyBufferSize = 32 << 10

// copyBuffers lends the buffers that copy answers to clients. Without it
// ReverseProxy allocates 32 KiB per request, and the garbage collector's
// work cost the shim a tenth of its passthrough rate.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}

// bufferPool is an httputil.BufferPool on a sync.Pool.
type bufferPool struct{ pool sync.Pool }

// Get returns a buffer of copyBufferSize bytes.
func (p *bufferPool) Get() []byte { return *p.pool.Get().(*[]byte) }

// Put gives a buffer from Get back.
func (p *bufferPool) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		p.pool.Put(&b)
	}
}
