package statuspage

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecentKeepsTheNewestFirst(t *testing.T) {
	r := NewRecent(3)
	for i, c := range []string{"a", "b", "c", "d"} {
		r.Add(Finished{Client: c, RanSeconds: float64(i + 1)})
	}
	l := r.List()
	require.Len(t, l, 3)
	assert.Equal(t, []string{"d", "c", "b"}, []string{l[0].Client, l[1].Client, l[2].Client})
	mean, n := r.MeanRan()
	assert.Equal(t, 3, n)
	assert.InDelta(t, 3.0, mean, 1e-9) // (2+3+4)/3
}

func TestMeanRanSkipsJobsThatNeverRan(t *testing.T) {
	r := NewRecent(0)
	mean, n := r.MeanRan()
	assert.Zero(t, mean)
	assert.Zero(t, n)
	r.Add(Finished{Result: "queue_timeout"})
	r.Add(Finished{Result: "done", RanSeconds: 10})
	mean, n = r.MeanRan()
	assert.Equal(t, 1, n)
	assert.InDelta(t, 10.0, mean, 1e-9)
}

func TestEstimateStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		position int
		running  bool
		ran      float64
		mean     float64
		want     float64
		ok       bool
	}{
		{"next, free GPU", 1, false, 0, 10, 0, true},
		{"next, job half done", 1, true, 4, 10, 6, true},
		{"third, job half done", 3, true, 4, 10, 26, true},
		{"job over its mean counts as ending now", 2, true, 30, 10, 10, true},
		{"no mean yet", 1, true, 4, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := EstimateStart(tc.position, tc.running, tc.ran, tc.mean)
			assert.Equal(t, tc.ok, ok)
			assert.InDelta(t, tc.want, got, 1e-9)
		})
	}
}
