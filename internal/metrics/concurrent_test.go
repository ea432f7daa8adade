package metrics

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentUpdatesAndScrapes updates every kind from several
// goroutines while another scrapes, and checks that nothing is lost and
// every scrape parses with a histogram count equal to its +Inf bucket.
func TestConcurrentUpdatesAndScrapes(t *testing.T) {
	const workers, each = 4, 500
	r := NewRegistry()
	cv := NewCounterVec(Opts{Name: "ops_total", Help: "Ops."}, []string{"worker"})
	g := NewGauge(Opts{Name: "level", Help: "Level."})
	h := NewHistogram(HistogramOpts{Opts: Opts{Name: "lat_seconds", Help: "Latency."}, Buckets: []float64{0.5}})
	r.MustRegister(cv, g, h)

	stop := make(chan struct{})
	scraped := make(chan int, 1)
	go func() {
		n := 0
		defer func() { scraped <- n }()
		for { // at least one scrape, then until stop
			p := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := p.TextToMetricFamilies(strings.NewReader(scrapeText(r)))
			if !assert.NoError(t, err) {
				return
			}
			if f := fams["lat_seconds"]; f != nil {
				hist := f.GetMetric()[0].GetHistogram()
				b := hist.GetBucket()
				assert.Equal(t, b[len(b)-1].GetCumulativeCount(), hist.GetSampleCount())
			}
			n++
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := cv.WithLabelValues(strconv.Itoa(w % 2))
			for i := range each {
				c.Inc()
				g.Inc()
				g.Dec()
				h.Observe(float64(i%2) * 0.75)
			}
		})
	}
	wg.Wait()
	close(stop)
	require.Positive(t, <-scraped)

	total := 0.0
	cv.Each(func(_ []string, v float64) { total += v })
	assert.Equal(t, float64(workers*each), total)
	assert.Equal(t, 0.0, g.Value())
	assert.Equal(t, uint64(workers*each), h.Count())
	assert.Equal(t, float64(workers*each/2)*0.75, h.Sum())
	s := h.snapshot()
	assert.Equal(t, []uint64{workers * each / 2, workers * each}, s.cumulative)
}
