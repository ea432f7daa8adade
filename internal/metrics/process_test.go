package metrics

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func processFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	r := NewRegistry()
	r.MustRegister(ProcessCollectors()...)
	return parse(t, scrapeText(r))
}

func valueOf(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	require.NotNil(t, f, "%s is missing", name)
	require.Len(t, f.GetMetric(), 1)
	if f.GetType() == dto.MetricType_COUNTER {
		return f.GetMetric()[0].GetCounter().GetValue()
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

func TestProcessCollectors(t *testing.T) {
	fams := processFamilies(t)
	assert.GreaterOrEqual(t, valueOf(t, fams, "go_goroutines"), 1.0)
	assert.Positive(t, valueOf(t, fams, "go_memstats_heap_alloc_bytes"))
	assert.GreaterOrEqual(t, valueOf(t, fams, "go_memstats_sys_bytes"), valueOf(t, fams, "go_memstats_heap_alloc_bytes"))
	if runtime.GOOS != "linux" {
		return
	}
	assert.Equal(t, dto.MetricType_COUNTER, fams["process_cpu_seconds_total"].GetType())
	assert.Positive(t, valueOf(t, fams, "process_cpu_seconds_total"))
	assert.Positive(t, valueOf(t, fams, "process_resident_memory_bytes"))
	open := valueOf(t, fams, "process_open_fds")
	assert.GreaterOrEqual(t, open, 3.0, "stdin, stdout and stderr at least")
	assert.GreaterOrEqual(t, valueOf(t, fams, "process_max_fds"), open)

	f, err := os.Create(filepath.Join(t.TempDir(), "one-more-fd"))
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, open+1, valueOf(t, processFamilies(t), "process_open_fds"))

	started := time.Unix(0, int64(valueOf(t, fams, "process_start_time_seconds")*1e9))
	assert.WithinDuration(t, time.Now(), started, time.Hour, "the test binary started %s", started)
	assert.False(t, started.After(time.Now().Add(time.Second)))
}
