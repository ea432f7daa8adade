package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gpulock/gpulock/gpulock"
)

// Flag values of the server commands; exec's are in internal/execcmd.

// sizeValue is a byte count: a plain number of bytes, or a number with a
// unit, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
type sizeValue struct{ n int64 }

// Set parses a size such as 268435456, 256MiB or 1.5GB.
func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	v.n = n
	return nil
}

// String is the size in the largest binary unit that divides it.
func (v *sizeValue) String() string {
	if v == nil {
		return ""
	}
	return formatSize(v.n)
}

var sizeUnits = []struct {
	name string
	mult float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"b", 1},
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, errors.New("cannot be negative")
		}
		return n, nil
	}
	lower := strings.ToLower(s)
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(lower, u.name)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			break
		}
		if f < 0 {
			return 0, errors.New("cannot be negative")
		}
		b := f * u.mult
		if b > math.MaxInt64 {
			return 0, errors.New("is too large")
		}
		return int64(math.Round(b)), nil
	}
	return 0, errors.New("not a size: write bytes, or a number and a unit (KiB, MiB, GiB, KB, MB, GB), e.g. 256MiB")
}

func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// gpuValue is one GPU's number, for the shim, which serves one GPU.
type gpuValue struct{ n int }

// Set parses a GPU number.
func (v *gpuValue) Set(s string) error {
	n, err := parseOneGPU(s)
	if err != nil {
		return err
	}
	v.n = n
	return nil
}

// String is the GPU's number.
func (v *gpuValue) String() string {
	if v == nil {
		return ""
	}
	return strconv.Itoa(v.n)
}

func parseOneGPU(s string) (int, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("negative numbers are not GPUs; GPUs are numbered from 0, as nvidia-smi does")
	}
	n, err := strconv.Atoi(s)
	if err == nil {
		if n > gpulock.MaxGPU {
			return 0, fmt.Errorf("is out of range 0-%d", gpulock.MaxGPU)
		}
		return n, nil
	}
	if strings.ContainsAny(s, ",") || strings.EqualFold(s, "any") || strings.EqualFold(s, "all") || strings.Contains(s, "-") {
		return 0, errors.New("the shim serves one GPU: give its number, e.g. 0 (run one shim per GPU)")
	}
	return 0, errors.New("not a GPU number: GPUs are numbered from 0, as nvidia-smi does")
}
