package metrics

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync/atomic"
)

// DefBuckets are Prometheus's default histogram buckets, in seconds.
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// HistogramOpts names a histogram and gives its buckets.
type HistogramOpts struct {
	Opts
	// Buckets are the upper bounds (inclusive) of the buckets, increasing;
	// +Inf is added. Nil means DefBuckets.
	Buckets []float64
}

// Histogram counts observations in buckets, with their sum and count.
// Make one with NewHistogram or get one from a HistogramVec.
type Histogram struct {
	d      *desc
	bounds []float64       // increasing, without +Inf
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomicFloat
}

// NewHistogram returns a histogram; it panics if opts' names are invalid
// or its buckets do not increase.
func NewHistogram(opts HistogramOpts) *Histogram {
	d := newDesc(opts.Opts, kindHistogram, nil)
	return newHistogram(d, checkBuckets(d.name, opts.Buckets))
}

func newHistogram(d *desc, bounds []float64) *Histogram {
	return &Histogram{d: d, bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func checkBuckets(name string, b []float64) []float64 {
	if b == nil {
		b = DefBuckets
	}
	b = slices.Clone(b)
	if n := len(b); n > 0 && math.IsInf(b[n-1], 1) {
		b = b[:n-1]
	}
	for i := range b {
		if math.IsNaN(b[i]) || i > 0 && b[i] <= b[i-1] {
			panic(fmt.Sprintf("metrics: histogram %s: buckets must increase (%v)", name, b))
		}
	}
	return b
}

// Observe adds one observation v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // the first bound >= v; NaN goes to +Inf
	h.counts[i].Add(1)
	h.sum.add(v)
}

// Count returns the number of observations so far.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Sum returns the sum of the observations so far.
func (h *Histogram) Sum() float64 { return h.sum.load() }

// snapshot reads the histogram: cumulative counts per bound (the last,
// +Inf, is the count), so _count always equals the +Inf bucket.
func (h *Histogram) snapshot() *histSample {
	s := &histSample{bounds: h.bounds, cumulative: make([]uint64, len(h.counts))}
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		s.cumulative[i] = n
	}
	s.sum = h.sum.load()
	return s
}

func (h *Histogram) collect(g *gatherer) { g.add(h.d, nil, sample{hist: h.snapshot()}) }

// HistogramVec is a family of histograms told apart by label values.
type HistogramVec struct{ v *vec[*Histogram] }

// NewHistogramVec returns a family of histograms with the given variable
// labels; it panics if a name is invalid or the buckets do not increase.
func NewHistogramVec(opts HistogramOpts, labelNames []string) *HistogramVec {
	d := newDesc(opts.Opts, kindHistogram, labelNames)
	b := checkBuckets(d.name, opts.Buckets)
	return &HistogramVec{v: newVec(d, func() *Histogram { return newHistogram(d, b) })}
}

// WithLabelValues returns the histogram for the label values, in the
// order of the label names, making it at the first call; it panics if
// their number is wrong.
func (hv *HistogramVec) WithLabelValues(values ...string) *Histogram { return hv.v.with(values) }

func (hv *HistogramVec) collect(g *gatherer) {
	hv.v.each(func(values []string, h *Histogram) { g.add(hv.v.d, values, sample{hist: h.snapshot()}) })
}
