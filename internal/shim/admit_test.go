package shim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A declared Content-Length over --max-body gets 413 before a byte of the
// body is sent.
func TestDeclaredOversizeBodyIsRefusedUnread(t *testing.T) {
	backend, forwarded := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL, func(c *Config) { c.MaxBody = 1 << 20 })
	c := dialRaw(t, front.URL)
	c.send(fmt.Sprintf("POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20+1))
	resp, body := c.response() // the body was never sent
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, bodyTooLarge, shimError(t, body).Type)
	assert.True(t, resp.Close, "the connection closes: the body is not read")
	assert.Zero(t, forwarded.Load())
	assert.Equal(t, 1.0, badRequests(t, s, bodyTooLarge))
}

// A full line refuses an upload before its body is sent.
func TestFullLineRefusesBeforeTheBody(t *testing.T) {
	backend, _ := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL, func(c *Config) { c.MaxQueue = 1 })
	release := holdGPU(t, s)
	waiting := dialRaw(t, front.URL)
	waiting.send("POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	waitFor(t, "a request in line", func() bool { return s.line.len() == 1 })

	c := dialRaw(t, front.URL)
	c.send(fmt.Sprintf("POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 32<<20))
	resp, body := c.response()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, outcomeQueueFull, shimError(t, body).Type)
	assert.NotEmpty(t, resp.Header.Get(HeaderRetryAfter))
	assert.Equal(t, int64(2), s.budget.highWater(), "only the waiting request's body was held")

	release()
	resp, _ = waiting.response()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// Concurrent uploads are bounded by the line or by the byte budget before
// their bodies are read: memory grows with what can be admitted, not with
// the number of uploads (issue: 12 uploads of 200 MB took 4.7 GB).
func TestConcurrentUploadsHoldBoundedMemory(t *testing.T) {
	const (
		uploads  = 8
		size     = 32 << 20
		admitted = 2
	)
	payload := bytes.Repeat([]byte("x"), size)
	cases := []struct {
		name    string
		opt     envOption
		refusal string
	}{
		{"full line", func(c *Config) { c.MaxQueue = admitted; c.MaxBody = size }, outcomeQueueFull},
		{"byte budget", func(c *Config) { c.MaxBody = size; c.MaxBuffered = admitted * size }, outcomeBufferFull},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			backend, forwarded := countingBackend(t)
			s, front := startShim(t, t.TempDir(), "a1111", backend.URL, tc.opt)
			release := holdGPU(t, s)
			peak := sampleHeap(t)

			results := make(chan uploadResult, uploads)
			var wg sync.WaitGroup
			for range uploads {
				wg.Go(func() { results <- rawUpload(front.URL, "/sdapi/v1/txt2img", payload) })
			}
			for range uploads - admitted {
				r := <-results // the admitted ones wait in line: these are the refused
				require.NoError(t, r.err)
				assert.Equal(t, http.StatusServiceUnavailable, r.status)
				assert.Contains(t, string(r.body), `"type":"`+tc.refusal+`"`)
			}
			waitFor(t, "the admitted uploads in line", func() bool { return s.line.len() == admitted })
			grown := peak.stop()
			t.Logf("%d uploads of %d MiB: %d admitted, peak heap growth %d MiB, budget high water %d MiB",
				uploads, size>>20, admitted, grown>>20, s.budget.highWater()>>20)
			assert.Equal(t, int64(admitted*size), s.budget.highWater(), "no more bodies were read than admitted")
			assert.Less(t, grown, int64(admitted*size+24<<20), "heap bounded by the admitted bodies")

			release()
			for range admitted {
				r := <-results
				require.NoError(t, r.err)
				assert.Equal(t, http.StatusOK, r.status)
			}
			wg.Wait()
			assert.Equal(t, int64(admitted), forwarded.Load())
			assert.Zero(t, s.budget.inUse(), "every body's bytes are given back")
		})
	}
}

// A chunked body is charged to the budget as it grows.
func TestChunkedBodyIsChargedAsItGrows(t *testing.T) {
	backend, forwarded := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL, func(c *Config) { c.MaxBody = 1 << 20; c.MaxBuffered = 1 << 20 })
	release := holdGPU(t, s)
	first := make(chan int, 1)
	go func() { first <- postChunked(front.URL+"/sdapi/v1/txt2img", 700<<10) }()
	waitFor(t, "the first upload in line", func() bool { return s.line.len() == 1 })
	assert.Greater(t, s.budget.inUse(), int64(700<<10))

	assert.Equal(t, http.StatusServiceUnavailable, postChunked(front.URL+"/sdapi/v1/txt2img", 10), "no room left in the budget")
	release()
	assert.Equal(t, http.StatusOK, <-first)
	assert.Equal(t, int64(1), forwarded.Load())
	assert.Zero(t, s.budget.inUse())
}

// postChunked posts n bytes without a declared length; it returns the
// status, or 0 if there was none.
func postChunked(url string, n int) int {
	body := io.MultiReader(strings.NewReader(strings.Repeat("x", n))) // no length: chunked
	resp, err := http.Post(url, "application/octet-stream", body)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// uploadResult is what became of a rawUpload.
type uploadResult struct {
	status int
	body   []byte
	err    error
}

// rawUpload posts payload over a raw connection, reading the answer while
// the body is still being sent, as a client does that a server refuses
// early. The connection is closed when it returns.
func rawUpload(base, path string, payload []byte) uploadResult {
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return uploadResult{err: err}
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(eventTimeout)); err != nil {
		return uploadResult{err: err}
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, len(payload))
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		if _, err := io.WriteString(conn, head); err == nil {
			_, _ = conn.Write(payload) // fails once a refusing server closes
		}
	}()
	defer func() { conn.Close(); <-sent }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return uploadResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return uploadResult{status: resp.StatusCode, body: body, err: err}
}

// heapSampler records the highest HeapInuse above its start while it runs.
type heapSampler struct {
	base  int64
	stopc chan struct{}
	done  chan int64
}

// sampleHeap starts sampling the heap every few milliseconds.
func sampleHeap(t *testing.T) *heapSampler {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapSampler{base: int64(ms.HeapInuse), stopc: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var top int64
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			top = max(top, int64(ms.HeapInuse)-h.base)
			select {
			case <-h.stopc:
				h.done <- top
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop ends the sampling and returns the peak growth; later calls return 0.
func (h *heapSampler) stop() int64 {
	select {
	case <-h.stopc:
		return 0
	default:
	}
	close(h.stopc)
	return <-h.done
}

// The byte budget defaults to DefaultMaxBuffered, or MaxBody if larger,
// and cannot be below MaxBody: the largest body could never be read.
func TestMaxBufferedDefaultsAndBounds(t *testing.T) {
	p, err := LookupProfile("generic")
	require.NoError(t, err)
	base := Config{Upstream: mustURL(t, "http://127.0.0.1:1"), Profile: p}

	c, err := base.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, DefaultMaxBuffered, c.MaxBuffered)
	assert.Equal(t, DefaultBodyTimeout, c.BodyTimeout)

	big := base
	big.MaxBody = 2 * DefaultMaxBuffered
	c, err = big.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, big.MaxBody, c.MaxBuffered)

	low := base
	low.MaxBody, low.MaxBuffered = 1<<20, 1<<19
	_, err = low.withDefaults()
	assert.ErrorContains(t, err, "--max-buffered")

	off := base
	off.BodyTimeout = -1
	c, err = off.withDefaults()
	require.NoError(t, err)
	assert.Zero(t, c.BodyTimeout, "negative turns it off")
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}
