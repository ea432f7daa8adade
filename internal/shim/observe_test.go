package shim

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape reads a shim's metrics with the Prometheus text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + PathMetrics)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// counterWith returns the value of family's sample whose label name=value.
func counterWith(t *testing.T, f *dto.MetricFamily, name, value string) float64 {
	t.Helper()
	require.NotNil(t, f)
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestMetricsCountJobsWaitsAndOutcomes(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		require.NoError(t, client(e.a1111Via).A1111Txt2Img(context.Background(), 2))
	}
	_, err := client(e.comfyVia).ComfyPrompt(context.Background(), promptGraph(2))
	require.NoError(t, err)
	waitFor(t, "the prompt's lock to be released", func() bool { return e.comfyShim.watch.count() == 0 })

	a := scrape(t, e.a1111Via)
	assert.Equal(t, 3.0, counterWith(t, a["gpulock_shim_requests_total"], "outcome", "done"))
	assert.Equal(t, uint64(3), a["gpulock_shim_wait_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())
	assert.Equal(t, uint64(3), a["gpulock_shim_hold_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())
	assert.Contains(t, a, "gpulock_shim_queue_length")
	assert.Contains(t, a, "process_open_fds", "the process basics are there too")
	for _, name := range []string{"gpulock_shim_vram_handoffs_total", "gpulock_shim_vram_free_seconds", "gpulock_shim_backend_busy_seconds_total"} {
		assert.Contains(t, a, name)
	}
	labels := map[string]string{}
	for _, l := range a["gpulock_shim_requests_total"].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	assert.Equal(t, "a1111", labels["service"])
	assert.Equal(t, "0", labels["gpu"])

	c := scrape(t, e.comfyVia)
	assert.Equal(t, 1.0, counterWith(t, c["gpulock_shim_requests_total"], "outcome", "done"))
}

func TestMetricsCountRefusals(t *testing.T) {
	backend, _ := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.QueueTimeout = 20 * time.Millisecond
	})
	release := holdGPU(t, s)
	defer release()
	resp, _ := postJSON(t, front.URL+"/generate", `{}`)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	m := scrape(t, front.URL)
	assert.Equal(t, 1.0, counterWith(t, m["gpulock_shim_requests_total"], "outcome", "queue_timeout"))
}

func TestStatusShowsTheLineByRequestID(t *testing.T) {
	e := newEnv(t)
	release := holdGPU(t, e.a1111Shim)
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.a1111Via+"/sdapi/v1/txt2img", strings.NewReader(`{"steps":2}`))
		req.Header.Set(HeaderRequestID, "my-job-42")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the request to queue", func() bool { return e.a1111Shim.line.len() == 1 })

	resp, err := http.Get(e.a1111Via + PathStatus)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	resp.Body.Close()
	for _, key := range []string{"name", "gpu", "path", "held", "holder", "waiters", "shim"} {
		assert.Contains(t, doc, key, "the schema of gpulock status --json, plus the shim")
	}
	assert.Equal(t, true, doc["held"])
	shim := doc["shim"].(map[string]any)
	assert.Equal(t, "a1111", shim["service"])
	queue := shim["queue"].([]any)
	require.Len(t, queue, 1)
	entry := queue[0].(map[string]any)
	assert.Equal(t, "my-job-42", entry["request_id"])
	assert.Equal(t, 1.0, entry["position"])
	assert.Equal(t, "POST /sdapi/v1/txt2img", entry["route"])

	release()
	require.NoError(t, <-done)
}

// detectionBound is the documented bound on noticing GPU work that the
// backend started on its own.
const detectionBound = 500 * time.Millisecond

func TestA1111WorkStartedOnItsOwnHoldsTheLock(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	jobDone := e.a1111.StartLocalJob(60) // an extension's job: no request passes the shim
	var detected time.Duration
	waitFor(t, "the shim to hold the GPU for the backend", func() bool {
		st, err := e.a1111Shim.Lock().Status()
		if err == nil && st.Holder != nil && st.Holder.Service == "a1111" {
			detected = time.Since(start)
			return true
		}
		return false
	})
	t.Logf("detected after %v", detected)
	assert.Less(t, detected, detectionBound)

	// ComfyUI's next prompt waits until the extension's job is over.
	_, err := client(e.comfyVia).ComfyPrompt(context.Background(), promptGraph(2))
	require.NoError(t, err)
	select {
	case err := <-jobDone:
		require.NoError(t, err)
	default:
		t.Fatal("ComfyUI's prompt ran while A1111's own job was still running")
	}
	assert.Zero(t, e.stats(t).Overlaps)
	waitFor(t, "the lock to be free again", func() bool {
		st, err := e.a1111Shim.Lock().Status()
		return err == nil && !st.Held
	})
	m := scrape(t, e.a1111Via)
	assert.Positive(t, m["gpulock_shim_backend_busy_seconds_total"].GetMetric()[0].GetCounter().GetValue())
}

func TestComfyUIPromptQueuedOnItsPortHoldsTheLock(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	res, err := e.comfy.EnqueueLocal(fakecomfyPrompt(60))
	require.NoError(t, err)
	var detected time.Duration
	waitFor(t, "the shim to hold the GPU for ComfyUI", func() bool {
		st, err := e.comfyShim.Lock().Status()
		if err == nil && st.Holder != nil && st.Holder.Service == "comfyui" {
			detected = time.Since(start)
			return true
		}
		return false
	})
	t.Logf("detected after %v", detected)
	assert.Less(t, detected, detectionBound)

	require.NoError(t, client(e.a1111Via).A1111Txt2Img(context.Background(), 2))
	require.NoError(t, client(e.comfyURL).WaitPrompt(context.Background(), res.PromptID))
	assert.Zero(t, e.stats(t).Overlaps, "A1111's job waited for ComfyUI's own prompt")
}
