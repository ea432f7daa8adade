package statuspage

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHistoryBucketsBusyShareAndLongestLine(t *testing.T) {
	h := NewHistory(time.Minute, 3)
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	h.Record("gpu0", t0, true, 1)
	h.Record("gpu0", t0.Add(10*time.Second), false, 3)
	h.Record("gpu0", t0.Add(20*time.Second), true, 0)
	h.Record("gpu0", t0.Add(30*time.Second), true, 2)
	h.Record("gpu0", t0.Add(time.Minute), false, 0)

	s := h.Snapshot(t0.Add(time.Minute))["gpu0"]
	require.Len(t, s, 2)
	assert.Equal(t, t0, s[0].Start)
	assert.InDelta(t, 0.75, s[0].Busy, 1e-9)
	assert.Equal(t, 3, s[0].Line)
	assert.Zero(t, s[1].Busy)
	assert.Equal(t, time.Hour, NewHistory(0, 0).Span(), "an hour of minutes by default")
}

func TestHistoryKeepsOnlyItsWindow(t *testing.T) {
	h := NewHistory(time.Minute, 3)
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := range 10 {
		h.Record("gpu1", t0.Add(time.Duration(i)*time.Minute), i%2 == 0, i)
	}
	s := h.Snapshot(t0.Add(9 * time.Minute))["gpu1"]
	require.Len(t, s, 3)
	assert.Equal(t, t0.Add(7*time.Minute), s[0].Start)
	assert.Equal(t, 9, s[2].Line)

	assert.Empty(t, h.Snapshot(t0.Add(time.Hour))["gpu1"], "old buckets age out even with no new probe")
}
