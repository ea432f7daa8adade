package execcmd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Flag values whose parse errors say what is wrong and how to write it.
// urfave/cli and ParseArgs prefix them with the flag or environment variable they came
// from; onUsageError rewrites that prefix as "--flag VALUE:" or
// "GPULOCK_X=VALUE:".

// DurationValue is a duration that cannot be negative. A bare number other
// than 0 is refused: "5" might mean seconds or minutes.
type DurationValue struct{ d time.Duration }

// NewDurationValue is a DurationValue of d, for a flag's Value.
func NewDurationValue(d time.Duration) *DurationValue { return &DurationValue{d: d} }

// Set parses a Go duration such as 90s or 5m.
func (v *DurationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	v.d = d
	return nil
}

// String is the value as a Go duration.
func (v *DurationValue) String() string {
	if v == nil {
		return ""
	}
	return v.d.String()
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f == 0 {
			return 0, nil
		}
		if f < 0 {
			return 0, errors.New("cannot be negative")
		}
		return 0, fmt.Errorf("needs a unit, e.g. %ss or %sm", s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration: write a number and a unit, e.g. 90s, 5m or 1h30m")
	}
	if d < 0 {
		return 0, errors.New("cannot be negative")
	}
	return d, nil
}

// gpuSetValue is exec's --gpu: a GPU, a set of GPUs, or any. Only the
// syntax is checked here; exec resolves "any" (which may find no GPUs).
type gpuSetValue struct{ s string }

// Set checks a GPU set's syntax.
func (v *gpuSetValue) Set(s string) error {
	if err := checkGPUSet(s); err != nil {
		return err
	}
	v.s = s
	return nil
}

// String is the set as given.
func (v *gpuSetValue) String() string {
	if v == nil {
		return ""
	}
	return v.s
}

func checkGPUSet(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		if strings.HasPrefix(strings.TrimSpace(part), "-") {
			return errors.New("negative numbers are not GPUs; GPUs are numbered from 0, as nvidia-smi does")
		}
	}
	if t := strings.ToLower(strings.TrimSpace(s)); t == "any" || t == "all" {
		return nil // resolved (and GPUs looked for) by exec
	}
	_, err := gpulock.ParseGPUSet(s)
	if err != nil && !errors.Is(err, gpulock.ErrNoGPUs) {
		return errors.New(LibText(err))
	}
	return nil
}

// DurationOf is the duration of a DurationValue flag read from r.
func DurationOf(r FlagReader, name string) time.Duration {
	if v, ok := r.Generic(name).(*DurationValue); ok && v != nil {
		return v.d
	}
	return 0
}

// gpuSetOf is the GPU set of a gpuSetValue flag read from r.
func gpuSetOf(r FlagReader, name string) string {
	if v, ok := r.Generic(name).(*gpuSetValue); ok && v != nil {
		return v.s
	}
	return ""
}
