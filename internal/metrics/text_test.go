package metrics

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parse reads text with Prometheus's own parser.
func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err, "the text:\n%s", text)
	return fams
}

func scrapeText(r *Registry) string {
	var buf bytes.Buffer
	r.WriteText(&buf)
	return buf.String()
}

// labelsOf returns a metric's labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestExactTextOfEachKind(t *testing.T) {
	r := NewRegistry()
	c := NewCounter(Opts{Namespace: "app", Name: "jobs_total", Help: "Jobs done.", ConstLabels: Labels{"gpu": "0"}})
	c.Add(2)
	c.Inc()
	g := NewGauge(Opts{Name: "temp", Help: "A gauge."})
	g.Set(-1.5)
	h := NewHistogram(HistogramOpts{Opts: Opts{Name: "wait_seconds", Help: "Waits."}, Buckets: []float64{0.5, 1}})
	h.Observe(0.25)
	h.Observe(0.5)
	h.Observe(7)
	r.MustRegister(c, g, h)
	want := `# HELP app_jobs_total Jobs done.
# TYPE app_jobs_total counter
app_jobs_total{gpu="0"} 3
# HELP temp A gauge.
# TYPE temp gauge
temp -1.5
# HELP wait_seconds Waits.
# TYPE wait_seconds histogram
wait_seconds_bucket{le="0.5"} 2
wait_seconds_bucket{le="1"} 2
wait_seconds_bucket{le="+Inf"} 3
wait_seconds_sum 7.75
wait_seconds_count 3
`
	assert.Equal(t, want, scrapeText(r))
}

// TestRoundTripThroughExpfmt checks that Prometheus's parser reads every
// kind, label escapes included, and that its own writer renders what it
// read exactly as this package wrote it.
func TestRoundTripThroughExpfmt(t *testing.T) {
	r := NewRegistry()
	odd := "a \"quoted\" back\\slash\nnew line, ünïcode \x1b"
	cv := NewCounterVec(Opts{Namespace: "gpulock", Subsystem: "shim", Name: "requests_total", Help: "Requests by outcome.\nSecond line \\ backslash.",
		ConstLabels: Labels{"service": odd, "gpu": "1"}}, []string{"outcome"})
	cv.WithLabelValues("done").Add(3)
	cv.WithLabelValues("refused").Inc()
	cv.WithLabelValues("bad\xffutf8").Inc()
	gv := NewGaugeVec(Opts{Name: "line_length", Help: "Line."}, []string{"profile", "zone"})
	gv.WithLabelValues("comfyui", "b").Set(4)
	gv.WithLabelValues("a1111", "a").Set(0)
	gf := NewGaugeFunc(Opts{Name: "answer", Help: "Callback."}, func() float64 { return 42 })
	hv := NewHistogramVec(HistogramOpts{Opts: Opts{Name: "dispatch_seconds", Help: "Dispatch."}, Buckets: []float64{0.001, 0.01, math.Inf(1)}}, []string{"profile"})
	hv.WithLabelValues("comfyui").Observe(0.005)
	hv.WithLabelValues("comfyui").Observe(0.0001)
	hv.WithLabelValues("a1111").Observe(3)
	r.MustRegister(cv, gv, gf, hv)

	text := scrapeText(r)
	fams := parse(t, text)
	require.Len(t, fams, 4)

	req := fams["gpulock_shim_requests_total"]
	require.NotNil(t, req)
	assert.Equal(t, dto.MetricType_COUNTER, req.GetType())
	assert.Equal(t, "Requests by outcome.\nSecond line \\ backslash.", req.GetHelp())
	byOutcome := map[string]float64{}
	for _, m := range req.GetMetric() {
		l := labelsOf(m)
		assert.Equal(t, odd, l["service"])
		assert.Equal(t, "1", l["gpu"])
		byOutcome[l["outcome"]] = m.GetCounter().GetValue()
	}
	assert.Equal(t, map[string]float64{"done": 3, "refused": 1, "bad\uFFFDutf8": 1}, byOutcome)

	assert.Equal(t, 42.0, fams["answer"].GetMetric()[0].GetGauge().GetValue())
	assert.Equal(t, dto.MetricType_GAUGE, fams["line_length"].GetType())

	disp := fams["dispatch_seconds"]
	require.Equal(t, dto.MetricType_HISTOGRAM, disp.GetType())
	require.Len(t, disp.GetMetric(), 2)
	comfy := disp.GetMetric()[1] // sorted: a1111 first
	assert.Equal(t, "comfyui", labelsOf(comfy)["profile"])
	hc := comfy.GetHistogram()
	assert.Equal(t, uint64(2), hc.GetSampleCount())
	assert.InDelta(t, 0.0051, hc.GetSampleSum(), 1e-12)
	var cum []uint64
	var bounds []float64
	for _, b := range hc.GetBucket() {
		cum = append(cum, b.GetCumulativeCount())
		bounds = append(bounds, b.GetUpperBound())
	}
	assert.Equal(t, []float64{0.001, 0.01, math.Inf(1)}, bounds, "the +Inf bound given as a bucket is not doubled")
	assert.Equal(t, []uint64{1, 2, 2}, cum)
	assert.Equal(t, 2, strings.Count(text, `le="+Inf"`))
	assert.Contains(t, text, `dispatch_seconds_bucket{profile="comfyui",le="+Inf"} 2`)

	// Prometheus's writer renders the parsed families as this package did.
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	var again bytes.Buffer
	for _, n := range names {
		_, err := expfmt.MetricFamilyToText(&again, fams[n])
		require.NoError(t, err)
	}
	assert.Equal(t, again.String(), text)
}

func TestOutputIsSortedAndStable(t *testing.T) {
	r := NewRegistry()
	// Registered out of order, children made out of order.
	b := NewCounterVec(Opts{Name: "b_total", Help: "B."}, []string{"k"})
	for _, k := range []string{"z", "a", "m", "b"} {
		b.WithLabelValues(k).Inc()
	}
	r.MustRegister(b, NewGaugeFunc(Opts{Name: "a", Help: "A."}, func() float64 { return 1 }))
	for _, level := range []string{"low", "high", "normal"} {
		r.MustRegister(NewGaugeFunc(Opts{Name: "waiting", Help: "W.", ConstLabels: Labels{"priority": level}}, func() float64 { return 0 }))
	}
	first := scrapeText(r)
	for range 5 {
		require.Equal(t, first, scrapeText(r))
	}
	lines := strings.Split(strings.TrimSpace(first), "\n")
	assert.Equal(t, []string{
		"# HELP a A.", "# TYPE a gauge", "a 1",
		"# HELP b_total B.", "# TYPE b_total counter",
		`b_total{k="a"} 1`, `b_total{k="b"} 1`, `b_total{k="m"} 1`, `b_total{k="z"} 1`,
		"# HELP waiting W.", "# TYPE waiting gauge",
		`waiting{priority="high"} 0`, `waiting{priority="low"} 0`, `waiting{priority="normal"} 0`,
	}, lines)
}

func TestEmptyRegistryAndEmptyVec(t *testing.T) {
	r := NewRegistry()
	assert.Empty(t, scrapeText(r))
	r.MustRegister(NewCounterVec(Opts{Name: "x_total", Help: "X."}, []string{"k"}))
	assert.Empty(t, scrapeText(r), "a family without children writes nothing")
}

func TestGaugeVecReset(t *testing.T) {
	r := NewRegistry()
	gv := NewGaugeVec(Opts{Name: "g", Help: "G."}, []string{"k"})
	r.MustRegister(gv)
	gv.WithLabelValues("old").Set(1)
	gv.Reset()
	gv.WithLabelValues("new").Set(2)
	fams := parse(t, scrapeText(r))
	require.Len(t, fams["g"].GetMetric(), 1)
	assert.Equal(t, map[string]string{"k": "new"}, labelsOf(fams["g"].GetMetric()[0]))
	assert.Equal(t, 2.0, fams["g"].GetMetric()[0].GetGauge().GetValue())
}

func TestHandler(t *testing.T) {
	r := NewRegistry()
	c := NewCounter(Opts{Name: "hits_total", Help: "Hits."})
	c.Inc()
	r.MustRegister(c)
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, ContentType, resp.Header.Get("Content-Type"))
	assert.Equal(t, expfmt.TypeTextPlain, expfmt.ResponseFormat(resp.Header).FormatType())
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, 1.0, fams["hits_total"].GetMetric()[0].GetCounter().GetValue())

	post, err := http.Post(srv.URL, "text/plain", nil)
	require.NoError(t, err)
	post.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, post.StatusCode)
	assert.Equal(t, "GET, HEAD", post.Header.Get("Allow"))
}

func TestFormatFloat(t *testing.T) {
	for v, want := range map[float64]string{1: "1", 0.005: "0.005", 3600: "3600", 1e-7: "1e-07", math.Inf(1): "+Inf", math.Inf(-1): "-Inf", math.NaN(): "NaN"} {
		assert.Equal(t, want, formatFloat(v))
	}
}
