package metrics

import (
	"fmt"
	"sync/atomic"
)

// Counter is a value that only goes up. The zero value is not usable:
// make one with NewCounter or get one from a CounterVec.
type Counter struct {
	d     *desc
	ints  atomic.Uint64 // whole increments, the fast path
	float atomicFloat
}

// NewCounter returns a counter; it panics if opts' names are invalid.
func NewCounter(opts Opts) *Counter {
	return &Counter{d: newDesc(opts, kindCounter, nil)}
}

// Inc adds one.
func (c *Counter) Inc() { c.ints.Add(1) }

// Add adds v; it panics if v is negative (a counter never goes down).
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic(fmt.Sprintf("metrics: counter %s cannot go down (Add(%v))", c.d.name, v))
	}
	if u := uint64(v); float64(u) == v {
		c.ints.Add(u)
		return
	}
	c.float.add(v)
}

// Value returns the counter's value now.
func (c *Counter) Value() float64 { return float64(c.ints.Load()) + c.float.load() }

func (c *Counter) collect(g *gatherer) { g.add(c.d, nil, sample{value: c.Value()}) }

// CounterVec is a family of counters told apart by label values.
type CounterVec struct{ v *vec[*Counter] }

// NewCounterVec returns a family of counters with the given variable
// labels; it panics if a name is invalid.
func NewCounterVec(opts Opts, labelNames []string) *CounterVec {
	d := newDesc(opts, kindCounter, labelNames)
	return &CounterVec{v: newVec(d, func() *Counter { return &Counter{d: d} })}
}

// WithLabelValues returns the counter for the label values, in the order
// of the label names, making it at the first call; it panics if their
// number is wrong.
func (cv *CounterVec) WithLabelValues(values ...string) *Counter { return cv.v.with(values) }

// Each calls f with every counter's label values and value, in no order.
func (cv *CounterVec) Each(f func(labelValues []string, value float64)) {
	cv.v.each(func(values []string, c *Counter) { f(values, c.Value()) })
}

func (cv *CounterVec) collect(g *gatherer) {
	cv.v.each(func(values []string, c *Counter) { g.add(cv.v.d, values, sample{value: c.Value()}) })
}

// CounterFunc is a counter whose value a callback returns at each scrape
// (a value that only goes up, kept elsewhere).
type CounterFunc struct {
	d *desc
	f func() float64
}

// NewCounterFunc returns a counter read from f, which must be safe to call
// from any goroutine and quick (it runs in the scrape); it panics if opts'
// names are invalid.
func NewCounterFunc(opts Opts, f func() float64) *CounterFunc {
	return &CounterFunc{d: newDesc(opts, kindCounter, nil), f: f}
}

func (c *CounterFunc) collect(g *gatherer) { g.add(c.d, nil, sample{value: c.f()}) }
