package metrics

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Collector is a metric a Registry exposes: a Counter, CounterVec,
// CounterFunc, Gauge, GaugeVec, GaugeFunc, Histogram or HistogramVec of
// this package.
type Collector interface {
	describe() *desc
	collect(g *gatherer)
}

func (c *Counter) describe() *desc       { return c.d }
func (c *CounterFunc) describe() *desc   { return c.d }
func (cv *CounterVec) describe() *desc   { return cv.v.d }
func (g *Gauge) describe() *desc         { return g.d }
func (gv *GaugeVec) describe() *desc     { return gv.v.d }
func (g *GaugeFunc) describe() *desc     { return g.d }
func (h *Histogram) describe() *desc     { return h.d }
func (hv *HistogramVec) describe() *desc { return hv.v.d }

// Registry is a set of collectors served together. The zero value is
// not usable: make one with NewRegistry.
type Registry struct {
	mu         sync.Mutex
	collectors []Collector
	families   map[string]*desc // the first desc registered under each name
	constSets  map[string]bool  // name + const label values registered
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]*desc{}, constSets: map[string]bool{}}
}

// Register adds collectors. It returns an error, and adds none of them,
// if one has the name of a metric already registered with another type,
// help or set of label names, or the same name and constant labels.
func (r *Registry) Register(cs ...Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	added := map[string]bool{}
	fams := map[string]*desc{}
	for _, c := range cs {
		d := c.describe()
		first := r.families[d.name]
		if first == nil {
			first = fams[d.name]
		}
		if first == nil {
			fams[d.name] = d
		} else if first.kind != d.kind || first.help != d.help || !slices.Equal(labelNameSet(first), labelNameSet(d)) {
			return fmt.Errorf("metrics: %s is registered already with another type, help or label names", d.name)
		}
		k := constKey(d)
		if r.constSets[k] || added[k] {
			return fmt.Errorf("metrics: %s with labels %v is registered already", d.name, d.constLabels)
		}
		added[k] = true
	}
	for n, d := range fams {
		r.families[n] = d
	}
	for k := range added {
		r.constSets[k] = true
	}
	r.collectors = append(r.collectors, cs...)
	return nil
}

// MustRegister is Register that panics on an error.
func (r *Registry) MustRegister(cs ...Collector) {
	if err := r.Register(cs...); err != nil {
		panic(err)
	}
}

func labelNameSet(d *desc) []string {
	var out []string
	for _, l := range d.constLabels {
		out = append(out, l.name)
	}
	out = append(out, d.labelNames...)
	slices.Sort(out)
	return out
}

func constKey(d *desc) string {
	var b strings.Builder
	b.WriteString(d.name)
	for _, l := range d.constLabels {
		b.WriteString("\xff" + l.name + "\xfe" + l.value)
	}
	return b.String()
}

// WriteText writes every registered metric in the text exposition format
// 0.0.4 to buf: families sorted by name, samples by their labels.
func (r *Registry) WriteText(buf *bytes.Buffer) {
	r.mu.Lock()
	cs := slices.Clone(r.collectors)
	r.mu.Unlock()
	g := &gatherer{families: map[string]*family{}}
	for _, c := range cs {
		c.collect(g)
	}
	writeText(buf, g.sorted())
}

// ContentType is the Content-Type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler returns an http.Handler that serves the registry's metrics to
// GET and HEAD requests.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics: answers GET only", http.StatusMethodNotAllowed)
			return
		}
		var buf bytes.Buffer
		r.WriteText(&buf)
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Cache-Control", "no-store")
		if req.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(buf.Bytes())
	})
}
