package gpulock

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseGPUSet(t *testing.T) {
	t.Setenv(GPUsEnv, "4")
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"0", []int{0}},
		{"3", []int{3}},
		{"0,2,3", []int{0, 2, 3}},
		{"0-3", []int{0, 1, 2, 3}},
		{"2,0-1", []int{2, 0, 1}},
		{" 1 , 1 ", []int{1}},
		{"any", []int{0, 1, 2, 3}},
		{"ALL", []int{0, 1, 2, 3}},
		{"1023", []int{1023}},
	} {
		got, err := ParseGPUSet(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"", "abc", "-1", "1-", "-", "3-1", "0,,1", "1.5", "1024", "0x1", "+1", "1 2", "99999999999999999999"} {
		_, err := ParseGPUSet(bad)
		assert.ErrorIs(t, err, ErrInvalidGPUSet, "%q", bad)
	}
}

func TestDetectGPUs(t *testing.T) {
	root := t.TempDir()
	_, err := detectGPUs("", root)
	require.ErrorIs(t, err, ErrNoGPUs)
	assert.Contains(t, err.Error(), GPUsEnv, "the error says how to fix it")

	require.NoError(t, os.MkdirAll(filepath.Join(root, "proc/driver/nvidia/gpus/0000:01:00.0"), 0o755))
	n, err := detectGPUs("", root)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	require.NoError(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	for _, name := range []string{"nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"} {
		require.NoError(t, os.WriteFile(filepath.Join(root, "dev", name), nil, 0o644))
	}
	n, err = detectGPUs("", root)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "control devices are not GPUs")

	n, err = detectGPUs("8", root)
	require.NoError(t, err)
	assert.Equal(t, 8, n)
	for _, bad := range []string{"0", "x", "-2"} {
		_, err = detectGPUs(bad, root)
		assert.ErrorContains(t, err, GPUsEnv)
	}
}

func FuzzParseGPUSet(f *testing.F) {
	for _, seed := range []string{"0", "0,2,3", "0-3", "any", "all", "3-1", "", "1,,2", "0-1023", "-", "٣"} {
		f.Add(seed)
	}
	f.Setenv(GPUsEnv, "2")
	f.Fuzz(func(t *testing.T, s string) {
		gpus, err := ParseGPUSet(s)
		if err != nil {
			return
		}
		require.NotEmpty(t, gpus)
		seen := map[int]bool{}
		for _, g := range gpus {
			require.GreaterOrEqual(t, g, 0)
			require.LessOrEqual(t, g, MaxGPU)
			require.False(t, seen[g], "duplicate %d in %v", g, gpus)
			seen[g] = true
		}
		// The list written back parses to the same set.
		parts := make([]string, len(gpus))
		for i, g := range gpus {
			parts[i] = strconv.Itoa(g)
		}
		again, err := ParseGPUSet(strings.Join(parts, ","))
		require.NoError(t, err)
		require.Equal(t, gpus, again)
	})
}
