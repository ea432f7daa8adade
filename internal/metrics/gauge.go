package metrics

// Gauge is a value that goes up and down. Make one with NewGauge or get one
// from a GaugeVec.
type Gauge struct {
	d *desc
	v atomicFloat
}

// NewGauge returns a gauge at 0; it panics if opts' names are invalid.
func NewGauge(opts Opts) *Gauge { return &Gauge{d: newDesc(opts, kindGauge, nil)} }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.v.store(v) }

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) { g.v.add(v) }

// Inc adds one.
func (g *Gauge) Inc() { g.v.add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.v.add(-1) }

// Value returns the gauge's value now.
func (g *Gauge) Value() float64 { return g.v.load() }

func (g *Gauge) collect(ga *gatherer) { ga.add(g.d, nil, sample{value: g.Value()}) }

// GaugeVec is a family of gauges told apart by label values.
type GaugeVec struct{ v *vec[*Gauge] }

// NewGaugeVec returns a family of gauges with the given variable labels;
// it panics if a name is invalid.
func NewGaugeVec(opts Opts, labelNames []string) *GaugeVec {
	d := newDesc(opts, kindGauge, labelNames)
	return &GaugeVec{v: newVec(d, func() *Gauge { return &Gauge{d: d} })}
}

// WithLabelValues returns the gauge for the label values, in the order of
// the label names, making it at the first call; it panics if their number
// is wrong.
func (gv *GaugeVec) WithLabelValues(values ...string) *Gauge { return gv.v.with(values) }

// Reset removes every gauge of the family (label values that are gone
// stop being exposed).
func (gv *GaugeVec) Reset() { gv.v.reset() }

func (gv *GaugeVec) collect(g *gatherer) {
	gv.v.each(func(values []string, ga *Gauge) { g.add(gv.v.d, values, sample{value: ga.Value()}) })
}

// GaugeFunc is a gauge whose value a callback returns at each scrape.
type GaugeFunc struct {
	d *desc
	f func() float64
}

// NewGaugeFunc returns a gauge read from f, which must be safe to call
// from any goroutine and quick (it runs in the scrape); it panics if opts'
// names are invalid.
func NewGaugeFunc(opts Opts, f func() float64) *GaugeFunc {
	return &GaugeFunc{d: newDesc(opts, kindGauge, nil), f: f}
}

// Value calls the callback.
func (g *GaugeFunc) Value() float64 { return g.f() }

func (g *GaugeFunc) collect(ga *gatherer) { ga.add(g.d, nil, sample{value: g.f()}) }
