package shim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakea1111"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// While ComfyUI's /queue fails with anything but a refused connection (a
// hung or broken ComfyUI: 500s, timeouts), check returns before its MaxHold
// and IdleTimeout cases, so a held prompt keeps the GPU with no bound.
func TestMaxHoldAppliesWhileTheQueueCannotBeRead(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/prompt":
			var m map[string]any
			_ = json.NewDecoder(r.Body).Decode(&m)
			_ = json.NewEncoder(w).Encode(map[string]any{"prompt_id": m["prompt_id"], "number": 0, "node_errors": map[string]any{}})
		case r.URL.Path == "/queue":
			http.Error(w, "internal error", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(backend.Close)
	s, front := startShim(t, t.TempDir(), "comfyui", backend.URL, func(c *Config) {
		c.MaxHold = 50 * time.Millisecond
		c.IdleTimeout = 50 * time.Millisecond
		c.WatchInterval = 10 * time.Millisecond
	})
	resp, err := http.Post(front.URL+"/prompt", "application/json", strings.NewReader(`{"prompt": {"1": {"class_type": "X", "inputs": {}}}}`))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, s.watch.count())

	waitFor(t, "the prompt's hold to end after MaxHold + IdleTimeout", func() bool { return s.watch.count() == 0 })
}

// hangingBackend is a backend whose GPU route never answers (until the test
// ends) and that records every other POST it gets, such as an interrupt.
// /queue and /sdapi/v1/progress report idle. answerOnInterrupt makes the
// hung request answer 200 once an interrupt comes, as a real backend does.
func hangingBackend(t *testing.T, gpuPath string, answerOnInterrupt bool) (*httptest.Server, <-chan string) {
	t.Helper()
	posts := make(chan string, 16)
	interrupted := make(chan struct{})
	var once sync.Once
	ended := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodPost && r.URL.Path == gpuPath:
			select {
			case <-interrupted:
				w.Write([]byte(`{"images": []}`))
			case <-ended:
			case <-r.Context().Done():
			case <-time.After(eventTimeout): // bounds the test if the shim never lets go
			}
		case r.Method == http.MethodPost:
			posts <- r.URL.Path
			if answerOnInterrupt {
				once.Do(func() { close(interrupted) })
			}
		case r.URL.Path == "/queue":
			w.Write([]byte(`{"queue_running": [], "queue_pending": []}`))
		case r.URL.Path == "/sdapi/v1/progress":
			w.Write([]byte(`{"state": {"job_count": 0}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(ended) }) // runs first: the hung handler returns
	return srv, posts
}

// TestMaxHoldAppliesToEveryProfile: a backend that never answers a GPU
// request keeps the GPU no longer than --max-hold (plus --idle-timeout
// after the interrupt, for a backend that can be interrupted); the client
// learns why, and the release is counted.
func TestMaxHoldAppliesToEveryProfile(t *testing.T) {
	const maxHold, idle = 100 * time.Millisecond, 100 * time.Millisecond
	for _, tc := range []struct {
		profile, route, interrupt string
	}{
		{"a1111", "/sdapi/v1/txt2img", "/sdapi/v1/interrupt"},
		{"comfyui", "/prompt", "/interrupt"},
		{"generic", "/generate", ""}, // cannot be interrupted
	} {
		t.Run(tc.profile, func(t *testing.T) {
			backend, posts := hangingBackend(t, tc.route, false)
			s, front := startShim(t, t.TempDir(), tc.profile, backend.URL, func(c *Config) {
				c.MaxHold, c.IdleTimeout = maxHold, idle
				if tc.profile == "generic" {
					c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
				}
			})
			start := time.Now()
			resp, doc := postBounded(t, front.URL+tc.route, `{"prompt": {"1": {"class_type": "X", "inputs": {}}}, "steps": 2}`)
			took := time.Since(start)

			assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
			assert.Equal(t, outcomeMaxHold, errorType(doc))
			bound := maxHold
			if tc.interrupt != "" {
				bound += idle
				select {
				case p := <-posts:
					assert.Equal(t, tc.interrupt, p, "the backend is asked to interrupt its job")
				default:
					t.Fatalf("no interrupt reached the %s backend", tc.profile)
				}
			}
			assert.GreaterOrEqual(t, took, bound, "released no sooner than --max-hold (+ --idle-timeout after an interrupt)")
			assert.Empty(t, posts, "nothing else posted to the backend")
			h, err := s.Lock().TryAcquire()
			require.NoError(t, err, "the GPU is free again")
			require.NoError(t, h.Release())
			assert.Equal(t, 1.0, counterWith(t, scrape(t, front.URL)["gpulock_shim_requests_total"], "outcome", outcomeMaxHold))
		})
	}
}

// TestMaxHoldInterruptedJobEndsWithItsAnswer: an A1111 job over --max-hold
// that stops when interrupted gives its answer, and the GPU is released at
// once, without waiting out --idle-timeout.
func TestMaxHoldInterruptedJobEndsWithItsAnswer(t *testing.T) {
	backend, posts := hangingBackend(t, "/sdapi/v1/txt2img", true)
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL, func(c *Config) {
		c.MaxHold, c.IdleTimeout = 50*time.Millisecond, time.Hour
	})
	resp, doc := postBounded(t, front.URL+"/sdapi/v1/txt2img", `{"steps": 2}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, doc, "images")
	select {
	case p := <-posts:
		assert.Equal(t, "/sdapi/v1/interrupt", p)
	default:
		t.Fatal("no interrupt reached the backend")
	}
	waitFor(t, "the GPU to be released", func() bool {
		h, err := s.Lock().TryAcquire()
		if err != nil {
			return false
		}
		return h.Release() == nil
	})
	assert.Equal(t, 1.0, counterWith(t, scrape(t, front.URL)["gpulock_shim_requests_total"], "outcome", outcomeMaxHold))
}

// TestMaxHoldInterruptsAnA1111UIJob: a UI job over the gradio queue is
// bounded too: A1111 is told to interrupt it, it completes, and the GPU is
// released, counted as max_hold.
func TestMaxHoldInterruptsAnA1111UIJob(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxHold = 100 * time.Millisecond })
	u := openUI(t, e.a1111Via, 5, fakea1111.UIJobData("task(long)", longSteps))
	u.must(t, "process_starts")
	m := u.must(t, "process_completed")
	assert.Equal(t, true, m["success"], "an interrupted A1111 job still completes")
	assert.EqualValues(t, 1, e.a1111.Counters().Interrupted)
	waitFor(t, "the GPU to be released", func() bool { return ownHolds(e.a1111Shim) == 0 })
	assert.Equal(t, 1.0, counterWith(t, scrape(t, e.a1111Via)["gpulock_shim_requests_total"], "outcome", outcomeMaxHold))
}

// postBounded posts body to url as JSON, failing the test if no answer
// comes within eventTimeout (the backends here may never answer).
func postBounded(t *testing.T, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	c := &http.Client{Timeout: eventTimeout}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err, "no answer: the GPU request was not bounded by --max-hold")
	defer resp.Body.Close()
	var doc map[string]any
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = json.Unmarshal(b, &doc)
	return resp, doc
}
