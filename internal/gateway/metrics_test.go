package gateway

import (
	"net/http"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrapeGateway reads a gateway's metrics with Prometheus's text parser.
func scrapeGateway(t testing.TB, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + PathMetrics)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sampleOf returns the value of the counter or gauge of fams named name
// whose labels include want (-1 when there is none).
func sampleOf(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	for _, m := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

func TestGatewayMetricsShowTheClusterAndJobs(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	gw := e.gateways["a1111"].URL
	waitFor(t, "the GPU to be free", func() bool { return e.freeCount(t, "a1111") == 1 })
	a1111 := map[string]string{"profile": "a1111"}
	done := map[string]string{"profile": "a1111", "outcome": "done"}

	f := scrapeGateway(t, gw)
	assert.Equal(t, 1.0, sampleOf(f, "gpulock_gateway_redis_up", nil))
	assert.Equal(t, 1.0, sampleOf(f, "gpulock_gateway_machines_alive", nil))
	assert.Equal(t, 1.0, sampleOf(f, "gpulock_gateway_gpus", a1111))
	assert.Equal(t, 0.0, sampleOf(f, "gpulock_gateway_gpus_busy", a1111))
	assert.Equal(t, 0.0, sampleOf(f, "gpulock_gateway_line_length", nil))
	assert.Equal(t, 0.0, sampleOf(f, "gpulock_gateway_jobs_total", done), "every outcome shows from the start")
	assert.Positive(t, sampleOf(f, "go_goroutines", nil), "the process basics are there too")

	code, _, body := post(t, gw+"/sdapi/v1/txt2img", `{"steps":2}`)
	require.Equal(t, http.StatusOK, code, body)
	f = scrapeGateway(t, gw)
	assert.Equal(t, 1.0, sampleOf(f, "gpulock_gateway_jobs_total", done))
	require.Len(t, f["gpulock_gateway_wait_seconds"].GetMetric(), 1)
	assert.Equal(t, uint64(1), f["gpulock_gateway_wait_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())

	// A long job holds the GPU; a second job waits in line behind it.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		code, _, body := post(t, gw+"/sdapi/v1/txt2img", `{"steps":2000}`)
		assert.Equal(t, http.StatusOK, code, body)
	})
	waitFor(t, "the GPU to show busy", func() bool {
		return sampleOf(scrapeGateway(t, gw), "gpulock_gateway_gpus_busy", a1111) == 1
	})
	wg.Go(func() {
		code, _, body := post(t, gw+"/sdapi/v1/txt2img", `{"steps":2}`)
		assert.Equal(t, http.StatusOK, code, body)
	})
	waitFor(t, "the second job to show in line", func() bool {
		f := scrapeGateway(t, gw)
		return sampleOf(f, "gpulock_gateway_line_length", nil) == 1 && sampleOf(f, "gpulock_gateway_line_length_by_profile", a1111) == 1
	})
	resp, err := http.Post(gw+"/sdapi/v1/interrupt", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	wg.Wait()

	f = scrapeGateway(t, gw)
	assert.Equal(t, 3.0, sampleOf(f, "gpulock_gateway_jobs_total", done))
	h := f["gpulock_gateway_wait_seconds"].GetMetric()[0].GetHistogram()
	assert.Equal(t, uint64(3), h.GetSampleCount())
	assert.Positive(t, h.GetSampleSum(), "the second job waited for the first")
	assert.Equal(t, 0.0, sampleOf(f, "gpulock_gateway_line_length", nil))

	// Redis gone: the gateway's own metrics stay, the cluster's go.
	e.redis.Stop()
	f = scrapeGateway(t, gw)
	assert.Equal(t, 0.0, sampleOf(f, "gpulock_gateway_redis_up", nil))
	assert.NotContains(t, f, "gpulock_gateway_gpus")
	assert.Equal(t, 3.0, sampleOf(f, "gpulock_gateway_jobs_total", done))
}

func TestGatewayMetricsCountRefusals(t *testing.T) {
	e := newCluster(t, 0, nil, nil)
	g, err := New(Config{Profile: "a1111", Store: e.store, Logger: quietLogger()})
	require.NoError(t, err)
	g.Start()
	defer g.Close()
	srv := httptestServer(t, g)
	code, _, body := post(t, srv+"/sdapi/v1/txt2img", `{}`)
	require.Equal(t, http.StatusServiceUnavailable, code, body)

	f := scrapeGateway(t, srv)
	assert.Equal(t, 1.0, sampleOf(f, "gpulock_gateway_jobs_total", map[string]string{"outcome": "no_machine"}))
	assert.Equal(t, 0.0, sampleOf(f, "gpulock_gateway_jobs_total", map[string]string{"outcome": "done"}))
	assert.Equal(t, 0.0, sampleOf(f, "gpulock_gateway_machines_alive", nil))
	assert.Equal(t, 1.0, sampleOf(f, "gpulock_gateway_redis_up", nil))
	assert.Equal(t, uint64(0), f["gpulock_gateway_wait_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())

	resp, err := http.Post(srv+PathMetrics, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
