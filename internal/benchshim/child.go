package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// helloBody is the tiny backend's answer: a small fixed body.
var helloBody = []byte("Hello, World!\n")

// Paths of the children.
const (
	pathGen     = "/gen"     // the GPU route of the waiting benchmark
	pathWaiting = "/waiting" // the bare server's count of held requests
)

// runChild runs one child role until SIGTERM:
//
//	child backend ADDR                 the tiny backend: helloBody for every request
//	child proxy-tuned ADDR UPSTREAM    httputil.ReverseProxy, Transport tuned as the shim's
//	child proxy-default ADDR UPSTREAM  httputil.ReverseProxy, http.DefaultTransport
//	child bare ADDR                    reads POST /gen's body, then blocks until SIGTERM
func runChild(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: child ROLE ADDR [UPSTREAM]")
	}
	role, addr := args[0], args[1]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var h http.Handler
	switch role {
	case "backend":
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(helloBody)))
			_, _ = w.Write(helloBody)
		})
	case "proxy-tuned", "proxy-default":
		if len(args) < 3 {
			return errors.New("a proxy needs an upstream")
		}
		u, err := url.Parse(args[2])
		if err != nil {
			return err
		}
		p := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		}}
		if role == "proxy-tuned" {
			p.Transport = tunedTransport()
		}
		h = p
	case "bare":
		h = bareHandler(ctx)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// tunedTransport is a copy of the shim's Transport settings
// (internal/shim/transport.go): a large idle pool for the one upstream.
func tunedTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// bareHandler is the bare net/http server of the waiting benchmark: POST
// /gen reads the whole body, as the shim does before it waits, and then
// blocks until ctx ends; GET /waiting says how many are blocked.
func bareHandler(ctx context.Context) http.Handler {
	var waiting atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case pathWaiting:
			fmt.Fprintln(w, waiting.Load())
		case pathGen:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			waiting.Add(1)
			select {
			case <-ctx.Done():
			case <-r.Context().Done():
			}
			waiting.Add(-1)
			runtime.KeepAlive(body) // held while waiting, as the shim holds it to forward
		default:
			http.NotFound(w, r)
		}
	})
}
