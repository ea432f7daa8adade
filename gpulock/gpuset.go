package gpulock

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// GPUsEnv is the environment variable that tells DetectGPUs how many GPUs
// the machine has, overriding what it finds.
const GPUsEnv = "GPULOCK_GPUS"

// ParseGPUSet parses a set of GPUs: a number ("0"), a list ("0,2,3"), a
// range ("0-3"), a mix ("0,2-3"), or "any" (alias "all") for every GPU of
// the machine (see DetectGPUs). The result keeps the order given, without
// duplicates. Bad text gives an error wrapping ErrInvalidGPUSet.
func ParseGPUSet(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "any", "all":
		n, err := DetectGPUs()
		if err != nil {
			return nil, err
		}
		gpus := make([]int, n)
		for i := range gpus {
			gpus[i] = i
		}
		return gpus, nil
	}
	var gpus []int
	seen := map[int]bool{}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, err := parseGPURange(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidGPUSet, quote(s), err)
		}
		for g := lo; g <= hi; g++ {
			if !seen[g] {
				seen[g] = true
				gpus = append(gpus, g)
			}
		}
	}
	return gpus, nil
}

// parseGPURange parses "N" or "N-M".
func parseGPURange(part string) (lo, hi int, err error) {
	if part == "" {
		return 0, 0, fmt.Errorf("empty element")
	}
	a, b, isRange := strings.Cut(part, "-")
	if lo, err = parseGPU(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parseGPU(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %s runs backwards", part)
	}
	return lo, hi, nil
}

func parseGPU(s string) (int, error) {
	if s == "" || len(s) > 4 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a GPU number", quote(s))
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > MaxGPU {
		return 0, fmt.Errorf("GPU %s is out of range 0-%d", s, MaxGPU)
	}
	return n, nil
}

// DetectGPUs returns how many GPUs this machine has: GPULOCK_GPUS if set,
// else the NVIDIA devices found as /dev/nvidia<N> or under
// /proc/driver/nvidia/gpus. With none found it returns an error wrapping
// ErrNoGPUs.
func DetectGPUs() (int, error) {
	return detectGPUs(os.Getenv(GPUsEnv), "/")
}

func detectGPUs(env, root string) (int, error) {
	if env != "" {
		n, err := strconv.Atoi(strings.TrimSpace(env))
		if err != nil || n < 1 || n > MaxGPU+1 {
			return 0, fmt.Errorf("gpulock: %s=%s is not a GPU count (want 1-%d)", GPUsEnv, quote(env), MaxGPU+1)
		}
		return n, nil
	}
	devs, _ := filepath.Glob(filepath.Join(root, "dev", "nvidia[0-9]*"))
	n := 0
	for _, d := range devs {
		if strings.TrimLeft(filepath.Base(d)[len("nvidia"):], "0123456789") == "" {
			n++
		}
	}
	if n == 0 {
		entries, _ := os.ReadDir(filepath.Join(root, "proc", "driver", "nvidia", "gpus"))
		n = len(entries)
	}
	if n == 0 {
		return 0, ErrNoGPUs
	}
	return n, nil
}
