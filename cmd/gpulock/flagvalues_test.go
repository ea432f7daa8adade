package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "268435456": 256 << 20, "256MiB": 256 << 20, "256mib": 256 << 20, "1GiB": 1 << 30,
		"4KiB": 4096, "1.5GB": 1_500_000_000, "10 MB": 10_000_000, "2KB": 2000, "100B": 100,
	}
	for in, want := range good {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "lots", "-1", "-1MiB", "5XB", "1e400GB", "NaNMB"} {
		_, err := parseSize(in)
		assert.Error(t, err, in)
	}
	assert.Equal(t, "256MiB", formatSize(256<<20))
	assert.Equal(t, "1000", formatSize(1000))
}

func TestParseOneGPU(t *testing.T) {
	n, err := parseOneGPU("3")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	for in, want := range map[string]string{
		"-1": "negative numbers are not GPUs", "any": "serves one GPU", "0,1": "serves one GPU",
		"0-3": "serves one GPU", "abc": "not a GPU number", "99999": "out of range",
	} {
		_, err := parseOneGPU(in)
		assert.ErrorContains(t, err, want, in)
	}
}
