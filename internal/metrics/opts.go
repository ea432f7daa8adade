package metrics

import (
	"fmt"
	"slices"
	"strings"
)

// Labels maps label names to values.
type Labels map[string]string

// Opts names and describes a metric.
type Opts struct {
	// Namespace, Subsystem and Name are joined with "_" to the metric's
	// name (empty parts are left out). The name must match
	// [a-zA-Z_:][a-zA-Z0-9_:]*.
	Namespace, Subsystem, Name string
	// Help is the metric's # HELP text.
	Help string
	// ConstLabels are labels with fixed values on every sample.
	ConstLabels Labels
}

// fullName joins the name's parts.
func (o Opts) fullName() string {
	var parts []string
	for _, p := range []string{o.Namespace, o.Subsystem, o.Name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

// kind is a metric family's # TYPE.
type kind string

const (
	kindCounter   kind = "counter"
	kindGauge     kind = "gauge"
	kindHistogram kind = "histogram"
)

// labelPair is one label of a sample.
type labelPair struct{ name, value string }

// desc is what a family's samples share.
type desc struct {
	name        string
	help        string
	kind        kind
	constLabels []labelPair // sorted by name
	labelNames  []string    // the variable labels, in the caller's order
}

// newDesc checks opts and the variable label names and panics on a
// mistake: they are constants of the caller.
func newDesc(opts Opts, k kind, labelNames []string) *desc {
	d := &desc{name: opts.fullName(), help: opts.Help, kind: k, labelNames: slices.Clone(labelNames)}
	if !validMetricName(d.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q (want [a-zA-Z_:][a-zA-Z0-9_:]*)", d.name))
	}
	seen := map[string]bool{}
	check := func(l string) {
		if !validLabelName(l) || (k == kindHistogram && l == "le") {
			panic(fmt.Sprintf("metrics: invalid label name %q on %s", l, d.name))
		}
		if seen[l] {
			panic(fmt.Sprintf("metrics: label %q given twice on %s", l, d.name))
		}
		seen[l] = true
	}
	for l, v := range opts.ConstLabels {
		check(l)
		d.constLabels = append(d.constLabels, labelPair{l, v})
	}
	slices.SortFunc(d.constLabels, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
	for _, l := range labelNames {
		check(l)
	}
	return d
}

// labels returns a sample's labels, sorted by name, for the variable
// labels' values.
func (d *desc) labels(values []string) []labelPair {
	out := slices.Clone(d.constLabels)
	for i, n := range d.labelNames {
		out = append(out, labelPair{n, values[i]})
	}
	slices.SortFunc(out, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
	return out
}

func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
