package metrics

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// sample is one metric's value: a number, or a histogram's snapshot.
type sample struct {
	value float64
	hist  *histSample
}

// histSample is a histogram read at one moment.
type histSample struct {
	bounds     []float64
	cumulative []uint64 // per bound, then +Inf
	sum        float64
}

// gathered is one metric of a family, ready to write.
type gathered struct {
	labels []labelPair
	sample
}

// family is what one # TYPE block holds.
type family struct {
	d       *desc
	metrics []gathered
}

// gatherer collects the samples of one scrape.
type gatherer struct{ families map[string]*family }

func (g *gatherer) add(d *desc, values []string, s sample) {
	f := g.families[d.name]
	if f == nil {
		f = &family{d: d}
		g.families[d.name] = f
	}
	f.metrics = append(f.metrics, gathered{labels: d.labels(values), sample: s})
}

// sorted returns the families sorted by name, each one's metrics by their
// labels.
func (g *gatherer) sorted() []*family {
	out := make([]*family, 0, len(g.families))
	for _, f := range g.families {
		slices.SortFunc(f.metrics, func(a, b gathered) int { return compareLabels(a.labels, b.labels) })
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *family) int { return strings.Compare(a.d.name, b.d.name) })
	return out
}

func compareLabels(a, b []labelPair) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i].name, b[i].name); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].value, b[i].value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func writeText(buf *bytes.Buffer, fams []*family) {
	for _, f := range fams {
		buf.WriteString("# HELP " + f.d.name + " ")
		writeEscaped(buf, f.d.help, false)
		buf.WriteString("\n# TYPE " + f.d.name + " " + string(f.d.kind) + "\n")
		for _, m := range f.metrics {
			if m.hist == nil {
				writeSample(buf, f.d.name, m.labels, "", m.value)
				continue
			}
			h := m.hist
			for i, c := range h.cumulative {
				le := "+Inf"
				if i < len(h.bounds) {
					le = formatFloat(h.bounds[i])
				}
				writeSample(buf, f.d.name+"_bucket", m.labels, le, float64(c))
			}
			writeSample(buf, f.d.name+"_sum", m.labels, "", h.sum)
			writeSample(buf, f.d.name+"_count", m.labels, "", float64(h.cumulative[len(h.cumulative)-1]))
		}
	}
}

// writeSample writes one line; le, if not empty, is a last label.
func writeSample(buf *bytes.Buffer, name string, labels []labelPair, le string, v float64) {
	buf.WriteString(name)
	if len(labels) > 0 || le != "" {
		buf.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(l.name + `="`)
			writeEscaped(buf, l.value, true)
			buf.WriteByte('"')
		}
		if le != "" {
			if len(labels) > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`le="` + le + `"`)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(' ')
	buf.WriteString(formatFloat(v))
	buf.WriteByte('\n')
}

// writeEscaped writes s as the format escapes it: backslash and newline
// (and, in a label value, the double quote). Invalid UTF-8 becomes U+FFFD,
// as the format is UTF-8.
func writeEscaped(buf *bytes.Buffer, s string, quote bool) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for _, c := range []byte(s) {
		switch {
		case c == '\\':
			buf.WriteString(`\\`)
		case c == '\n':
			buf.WriteString(`\n`)
		case c == '"' && quote:
			buf.WriteString(`\"`)
		default:
			buf.WriteByte(c)
		}
	}
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
