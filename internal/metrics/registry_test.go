package metrics

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegisterRefusesClashes(t *testing.T) {
	base := func() *Registry {
		r := NewRegistry()
		r.MustRegister(NewCounter(Opts{Name: "x_total", Help: "X.", ConstLabels: Labels{"gpu": "0"}}))
		return r
	}
	for _, tc := range []struct {
		name string
		c    Collector
		ok   bool
	}{
		{"same name and const labels", NewCounter(Opts{Name: "x_total", Help: "X.", ConstLabels: Labels{"gpu": "0"}}), false},
		{"other const label value", NewCounter(Opts{Name: "x_total", Help: "X.", ConstLabels: Labels{"gpu": "1"}}), true},
		{"other type", NewGauge(Opts{Name: "x_total", Help: "X.", ConstLabels: Labels{"gpu": "1"}}), false},
		{"other help", NewCounter(Opts{Name: "x_total", Help: "Y.", ConstLabels: Labels{"gpu": "1"}}), false},
		{"other label names", NewCounter(Opts{Name: "x_total", Help: "X.", ConstLabels: Labels{"node": "a"}}), false},
		{"other name", NewCounter(Opts{Name: "y_total", Help: "X."}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			err := r.Register(tc.c)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "metrics: ")
			assert.Len(t, r.collectors, 1, "nothing is added on an error")
		})
	}
}

func TestRegisterIsAllOrNothing(t *testing.T) {
	r := NewRegistry()
	a := NewCounter(Opts{Name: "a_total", Help: "A."})
	err := r.Register(a, NewGauge(Opts{Name: "b", Help: "B."}), NewCounter(Opts{Name: "a_total", Help: "A."}))
	require.Error(t, err)
	assert.Empty(t, scrapeText(r))
	require.NoError(t, r.Register(a), "a refused batch leaves its names free")
}

func TestInvalidNamesPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"empty name":        func() { NewCounter(Opts{}) },
		"digit first":       func() { NewGauge(Opts{Name: "1x"}) },
		"dash":              func() { NewGauge(Opts{Name: "a-b"}) },
		"label with colon":  func() { NewGauge(Opts{Name: "a", ConstLabels: Labels{"a:b": "v"}}) },
		"reserved label":    func() { NewCounterVec(Opts{Name: "a"}, []string{"__x"}) },
		"le on a histogram": func() { NewHistogramVec(HistogramOpts{Opts: Opts{Name: "h"}}, []string{"le"}) },
		"label twice":       func() { NewCounterVec(Opts{Name: "a", ConstLabels: Labels{"k": "v"}}, []string{"k"}) },
		"buckets unsorted":  func() { NewHistogram(HistogramOpts{Opts: Opts{Name: "h"}, Buckets: []float64{1, 0.5}}) },
		"buckets repeated":  func() { NewHistogram(HistogramOpts{Opts: Opts{Name: "h"}, Buckets: []float64{1, 1}}) },
		"wrong value count": func() { NewCounterVec(Opts{Name: "a"}, []string{"k", "l"}).WithLabelValues("v") },
		"counter going down": func() {
			NewCounter(Opts{Name: "a"}).Add(-1)
		},
	} {
		assert.Panics(t, f, name)
	}
	assert.NotPanics(t, func() { NewGauge(Opts{Namespace: "ns", Name: "a:b_c1", ConstLabels: Labels{"_ok1": ""}}) })
}

func TestInstruments(t *testing.T) {
	c := NewCounter(Opts{Name: "c_total"})
	c.Inc()
	c.Add(0.5)
	c.Add(2)
	assert.Equal(t, 3.5, c.Value())

	g := NewGauge(Opts{Name: "g"})
	g.Inc()
	g.Inc()
	g.Dec()
	g.Add(-3.25)
	assert.Equal(t, -2.25, g.Value())
	g.Set(7)
	assert.Equal(t, 7.0, g.Value())

	h := NewHistogram(HistogramOpts{Opts: Opts{Name: "h"}})
	for _, v := range []float64{0.001, 0.005, 0.3, 100} {
		h.Observe(v)
	}
	assert.Equal(t, uint64(4), h.Count())
	assert.InDelta(t, 100.306, h.Sum(), 1e-9)
	s := h.snapshot()
	require.Len(t, s.cumulative, len(DefBuckets)+1)
	assert.Equal(t, uint64(2), s.cumulative[0], "le=0.005 is inclusive")
	assert.Equal(t, uint64(3), s.cumulative[len(DefBuckets)-1])
	assert.Equal(t, uint64(4), s.cumulative[len(DefBuckets)])

	cv := NewCounterVec(Opts{Name: "cv_total"}, []string{"a", "b"})
	cv.WithLabelValues("x", "y").Inc()
	cv.WithLabelValues("x", "y").Inc()
	cv.WithLabelValues("xy", "").Inc()
	cv.WithLabelValues("a\xffb", "c").Inc() // no separator byte can make two lists one
	cv.WithLabelValues("a", "b\xffc").Inc()
	cv.WithLabelValues("1:x", "y").Inc()
	cv.WithLabelValues("1", "x:y").Inc()
	assert.Same(t, cv.WithLabelValues("x", "y"), cv.WithLabelValues("x", "y"))
	got := map[[2]string]float64{}
	cv.Each(func(v []string, n float64) { got[[2]string{v[0], v[1]}] = n })
	assert.Equal(t, map[[2]string]float64{{"x", "y"}: 2, {"xy", ""}: 1, {"a\xffb", "c"}: 1, {"a", "b\xffc"}: 1, {"1:x", "y"}: 1, {"1", "x:y"}: 1}, got)
}
