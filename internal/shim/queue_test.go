package shim

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingBackend answers every request 200 and counts the POSTs (the
// shim itself only GETs, to ask whether the backend is busy).
func countingBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func postJSON(t *testing.T, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &doc)
	return resp, doc
}

func errorType(doc map[string]any) string {
	e, _ := doc["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func TestQueueFullAnswers503AndForwardsNothing(t *testing.T) {
	backend, forwarded := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.MaxQueue = 1
	})
	release := holdGPU(t, s)
	queued := make(chan int, 1)
	go func() {
		resp, _ := postJSON(t, front.URL+"/generate", `{}`)
		queued <- resp.StatusCode
	}()
	waitFor(t, "one request in line", func() bool { return s.line.len() == 1 })

	resp, doc := postJSON(t, front.URL+"/generate", `{}`)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "queue_full", errorType(doc))
	assert.NotEmpty(t, resp.Header.Get(HeaderRetryAfter))
	assert.Zero(t, forwarded.Load(), "a 503 means nothing was forwarded")

	release()
	assert.Equal(t, http.StatusOK, <-queued)
	assert.Equal(t, int64(1), forwarded.Load())
}

func TestQueueTimeoutAnswers503(t *testing.T) {
	backend, forwarded := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.QueueTimeout = 50 * time.Millisecond
	})
	release := holdGPU(t, s)
	defer release()
	resp, doc := postJSON(t, front.URL+"/generate", `{}`)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "queue_timeout", errorType(doc))
	assert.Equal(t, "5", resp.Header.Get(HeaderRetryAfter))
	assert.Zero(t, forwarded.Load())
	waitFor(t, "the line to empty", func() bool { return s.line.len() == 0 })
}

func TestBodyLimit(t *testing.T) {
	backend, forwarded := countingBackend(t)
	_, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.MaxBody = 1024
	})
	resp, doc := postJSON(t, front.URL+"/generate", `{"x":"`+strings.Repeat("a", 2048)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, "body_too_large", errorType(doc))
	assert.Zero(t, forwarded.Load())
	resp, _ = postJSON(t, front.URL+"/generate", `{"x":1}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestClientLeavingWhileQueuedLeavesTheLine(t *testing.T) {
	backend, forwarded := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL)
	release := holdGPU(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&loadgen.Client{Base: front.URL}).A1111Txt2Img(ctx, 3) }()
	waitFor(t, "the request to queue", func() bool { return s.line.len() == 1 })
	cancel()
	<-done
	waitFor(t, "the line to empty", func() bool { return s.line.len() == 0 })
	release()
	h, err := s.Lock().AcquireTimeout(eventTimeout)
	require.NoError(t, err)
	require.NoError(t, h.Release())
	assert.Zero(t, forwarded.Load(), "nothing is forwarded for a client that left")
}

func TestUpstreamDownAnswers502AndReleases(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, profile := range []string{"a1111", "comfyui"} {
		t.Run(profile, func(t *testing.T) {
			s, front := startShim(t, t.TempDir(), profile, "http://"+addr)
			path := map[string]string{"a1111": "/sdapi/v1/txt2img", "comfyui": "/prompt"}[profile]
			resp, doc := postJSON(t, front.URL+path, `{"prompt":{}}`)
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			assert.Equal(t, "upstream_unreachable", errorType(doc))
			h, err := s.Lock().TryAcquire()
			require.NoError(t, err, "the lock is released at once when nothing ran")
			require.NoError(t, h.Release())
		})
	}
}

func TestInvalidPromptReleasesAtOnce(t *testing.T) {
	e := newEnv(t)
	resp, doc := postJSON(t, e.comfyVia+"/prompt", `{"prompt":{"1":{"class_type":"NoSuchNode","inputs":{}}}}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "invalid_prompt", errorType(doc), "ComfyUI's own answer reaches the client")
	h, err := e.comfyShim.Lock().TryAcquire()
	require.NoError(t, err)
	require.NoError(t, h.Release())
	assert.Zero(t, e.comfyShim.watch.count())
}

func TestPromptHoldsTheLockUntilComfyUIFinishes(t *testing.T) {
	e := newEnv(t)
	c := client(e.comfyVia)
	body, _ := json.Marshal(map[string]any{"prompt": fakecomfy.TextToImagePrompt(20, 1)})
	resp, doc := postJSON(t, e.comfyVia+"/api/prompt", string(body))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id, _ := doc["prompt_id"].(string)
	require.NotEmpty(t, id, "the shim assigns an id when the client gave none")
	assert.NotEmpty(t, resp.Header.Get(HeaderWait))

	_, err := e.comfyShim.Lock().TryAcquire()
	require.Error(t, err, "the answer came back, the prompt still runs: the lock is held")
	require.NoError(t, c.WaitPrompt(context.Background(), id))
	waitFor(t, "the lock to be released after the prompt", func() bool {
		h, err := e.comfyShim.Lock().TryAcquire()
		if err != nil {
			return false
		}
		require.NoError(t, h.Release())
		return true
	})
}

func TestPromptDeletedFromTheQueueReleases(t *testing.T) {
	e := newEnv(t)
	// A prompt queued straight on ComfyUI's port runs first; ours waits in
	// ComfyUI's queue behind it and is deleted there.
	long, err := e.comfy.EnqueueLocal(fakecomfy.PromptRequest{Prompt: fakecomfy.TextToImagePrompt(400, 9)})
	require.NoError(t, err)
	defer e.comfy.Interrupt(long.PromptID)
	body, _ := json.Marshal(map[string]any{"prompt": fakecomfy.TextToImagePrompt(3, 1), "prompt_id": "mine"})
	resp, _ := postJSON(t, e.comfyVia+"/prompt", string(body))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, e.comfyShim.watch.count())

	resp, _ = postJSON(t, e.comfyVia+"/queue", `{"delete":["mine"]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waitFor(t, "the deleted prompt's lock to be released", func() bool { return e.comfyShim.watch.count() == 0 })
}

func TestComfyUIRestartMidPromptReleases(t *testing.T) {
	// ComfyUI dies while our prompt runs and comes back empty on the same port.
	dir := t.TempDir()
	first, err := fakecomfy.New(fakecomfy.Config{StepDuration: stepDuration})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: first}
	go srv.Serve(ln)
	s, front := startShim(t, dir, "comfyui", "http://"+ln.Addr().String())

	body, _ := json.Marshal(map[string]any{"prompt": fakecomfy.TextToImagePrompt(1000, 1)})
	resp, _ := postJSON(t, front.URL+"/prompt", string(body))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, s.watch.count())

	srv.Close()
	first.Close()
	second, err := fakecomfy.New(fakecomfy.Config{StepDuration: stepDuration})
	require.NoError(t, err)
	defer second.Close()
	ln2, err := net.Listen("tcp", ln.Addr().String())
	require.NoError(t, err)
	srv2 := &http.Server{Handler: second}
	go srv2.Serve(ln2)
	defer srv2.Close()
	waitFor(t, "the lost prompt's lock to be released", func() bool { return s.watch.count() == 0 })
}

func TestA1111ClientLeavingMidJobKeepsTheLockUntilTheAnswer(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client(e.a1111Via).A1111Txt2Img(ctx, 40) }()
	waitFor(t, "the job to run", func() bool { return e.a1111.Progress().State.JobCount == 1 })
	cancel()
	<-done
	_, err := e.a1111Shim.Lock().TryAcquire()
	require.Error(t, err, "A1111 still generates: the lock stays held")
	waitFor(t, "the lock to be released once A1111 answered", func() bool {
		h, err := e.a1111Shim.Lock().TryAcquire()
		if err != nil {
			return false
		}
		require.NoError(t, h.Release())
		return true
	})
	assert.Equal(t, 0, e.a1111.Progress().State.JobCount)
}

func TestA1111OptionsTakeTheLockOnlyForAModelChange(t *testing.T) {
	e := newEnv(t)
	release := holdGPU(t, e.a1111Shim)
	// No model change: passes while the GPU is held elsewhere.
	resp, _ := postJSON(t, e.a1111Via+"/sdapi/v1/options", `{"samples_format":"png"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	changed := make(chan int, 1)
	go func() {
		resp, _ := postJSON(t, e.a1111Via+"/sdapi/v1/options", `{"sd_model_checkpoint":"v1-5-pruned-emaonly.safetensors"}`)
		changed <- resp.StatusCode
	}()
	waitFor(t, "the model change to wait for the GPU", func() bool { return e.a1111Shim.line.len() == 1 })
	release()
	assert.Equal(t, http.StatusOK, <-changed)
}

func TestExtraGPURoutes(t *testing.T) {
	backend, forwarded := countingBackend(t)
	r, err := ParseRoute("post /controlnet/*")
	require.NoError(t, err)
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL, func(c *Config) { c.GPURoutes = []Route{r} })
	release := holdGPU(t, s)
	done := make(chan int, 1)
	go func() {
		resp, _ := postJSON(t, front.URL+"/controlnet/detect/deep", `{}`)
		done <- resp.StatusCode
	}()
	waitFor(t, "the extra GPU route to queue", func() bool { return s.line.len() == 1 })
	assert.Zero(t, forwarded.Load())
	release()
	assert.Equal(t, http.StatusOK, <-done)

	for _, bad := range []string{"", "POST", "POST nopath", "/x"} {
		_, err := ParseRoute(bad)
		assert.Error(t, err, bad)
	}
}
