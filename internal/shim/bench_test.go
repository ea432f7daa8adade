package shim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/require"
)

// The loadgen-driven figures in docs/BENCHMARKS.md come from
// internal/benchshim (wrk, separate processes); these in-process benchmarks
// are for profiling the same paths with -cpuprofile and -memprofile.

// benchBody is the tiny backend's answer.
var benchBody = []byte("Hello, World!\n")

// benchParallelism makes RunParallel use 16 goroutines per CPU: 32 on two
// CPUs, as wrk -c32.
const benchParallelism = 16

// newBenchBackend starts a backend answering benchBody to every request.
func newBenchBackend(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(benchBody)))
		_, _ = w.Write(benchBody)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// newBenchShim returns a generic shim in front of upstream with POST /gen
// as its GPU route, not yet serving.
func newBenchShim(b *testing.B, upstream, lockDir string) *Shim {
	b.Helper()
	u, err := url.Parse(upstream)
	require.NoError(b, err)
	p, err := LookupProfile("generic")
	require.NoError(b, err)
	r, err := ParseRoute("POST /gen")
	require.NoError(b, err)
	s, err := New(Config{Upstream: u, LockDir: lockDir, Profile: p, GPURoutes: []Route{r},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	s.Start()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// serve serves h on a loopback httptest server closed at the end.
func serve(b *testing.B, h http.Handler) string {
	b.Helper()
	srv := httptest.NewServer(h)
	b.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}

// BenchmarkPassthrough sends GET / for a small body through each front in
// turn, from 32 goroutines on keep-alive connections, and reports
// requests/s. The client, the front and the backend share the process.
func BenchmarkPassthrough(b *testing.B) {
	backend := newBenchBackend(b)
	plain := func(t *http.Transport, pool httputil.BufferPool) http.Handler {
		u, _ := url.Parse(backend.URL)
		return &httputil.ReverseProxy{Transport: t, BufferPool: pool, Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		}}
	}
	tuned, def := newTransport(), http.DefaultTransport.(*http.Transport).Clone()
	b.Cleanup(tuned.CloseIdleConnections)
	b.Cleanup(def.CloseIdleConnections)
	fronts := []struct {
		name string
		url  func() string
	}{
		{"direct", func() string { return backend.URL }},
		{"shim", func() string { return serve(b, newBenchShim(b, backend.URL, b.TempDir())) }},
		{"proxy-tuned", func() string { return serve(b, plain(tuned, nil)) }},
		{"proxy-default", func() string { return serve(b, plain(def, nil)) }},
		// What a BufferPool would save: ReverseProxy otherwise allocates a
		// 32 KB copy buffer per response.
		{"proxy-tuned-pool", func() string { return serve(b, plain(tuned, copyBuffers)) }},
	}
	for _, f := range fronts {
		b.Run(f.name, func(b *testing.B) {
			target := f.url() + "/"
			tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(target)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

// waitingRequests is how many GPU requests BenchmarkWaitingHeap keeps waiting.
const waitingRequests = 2000

// BenchmarkWaitingHeap keeps waitingRequests POST /gen requests of 2 KB
// waiting, in the shim (the GPU lock held by another handle) and in a bare
// server that reads the body and blocks, and reports the live heap per
// waiting request after a GC (heap-B/waiting) and the goroutine stacks
// (stack-B/waiting). It ignores b.N: run it with -benchtime=1x.
func BenchmarkWaitingHeap(b *testing.B) {
	backend := newBenchBackend(b)
	body := bytes.Repeat([]byte{'x'}, 2048)
	for _, kind := range []string{"bare", "shim"} {
		b.Run(kind, func(b *testing.B) {
			var h http.Handler
			var waiting func() int
			var unblock func()
			switch kind {
			case "shim":
				dir := b.TempDir()
				lock, err := gpulock.New(0, gpulock.WithDir(dir))
				require.NoError(b, err)
				held, err := lock.TryAcquire()
				require.NoError(b, err)
				s := newBenchShim(b, backend.URL, dir)
				h, waiting, unblock = s, s.Waiting, func() { _ = held.Release() }
			case "bare":
				block := make(chan struct{})
				var n atomic.Int64
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					data, err := io.ReadAll(r.Body)
					if err != nil {
						return
					}
					n.Add(1)
					select {
					case <-block:
					case <-r.Context().Done():
					}
					runtime.KeepAlive(data)
				})
				waiting = func() int { return int(n.Load()) }
				unblock = func() { close(block) }
			}
			addr := serve(b, h)[len("http://"):]
			heap0, stack0 := liveHeap()
			conns := make([]net.Conn, 0, waitingRequests)
			req := append([]byte(fmt.Sprintf("POST /gen HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", addr, len(body))), body...)
			for range waitingRequests {
				c, err := net.Dial("tcp", addr)
				require.NoError(b, err)
				_, err = c.Write(req)
				require.NoError(b, err)
				conns = append(conns, c)
			}
			require.Eventually(b, func() bool { return waiting() == waitingRequests }, eventTimeout, pollEvery)
			heap1, stack1 := liveHeap()
			b.ReportMetric(float64(heap1-heap0)/waitingRequests, "heap-B/waiting")
			b.ReportMetric(float64(stack1-stack0)/waitingRequests, "stack-B/waiting")
			unblock()
			for _, c := range conns {
				c.Close()
			}
		})
	}
}

// liveHeap returns the heap and the goroutine stacks in use after a full GC.
func liveHeap() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse
}
