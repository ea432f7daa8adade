package metrics

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzTextRoundTrip checks that any label value and help text comes out
// of Prometheus's parser as it went in (invalid UTF-8 as U+FFFD; a help
// text without its leading blanks, which the parser skips).
func FuzzTextRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "new\nline", "\x1b[31m", "\xff\xfe", "ü\u202e", `\n`, `\"`} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, value, help string) {
		r := NewRegistry()
		cv := NewCounterVec(Opts{Name: "x_total", Help: help, ConstLabels: Labels{"c": value}}, []string{"v"})
		cv.WithLabelValues(value).Add(2)
		fams := parse(t, scrapeText(r.mustHave(cv)))
		fam := fams["x_total"]
		require.NotNil(t, fam)
		want := strings.ToValidUTF8(value, "\uFFFD")
		// The parser drops the blanks that start a help text.
		assert.Equal(t, strings.TrimLeft(strings.ToValidUTF8(help, "\uFFFD"), " \t"), fam.GetHelp())
		require.Len(t, fam.GetMetric(), 1)
		assert.Equal(t, map[string]string{"c": want, "v": want}, labelsOf(fam.GetMetric()[0]))
		assert.Equal(t, 2.0, fam.GetMetric()[0].GetCounter().GetValue())
	})
}

// mustHave registers cs and returns r.
func (r *Registry) mustHave(cs ...Collector) *Registry {
	r.MustRegister(cs...)
	return r
}
