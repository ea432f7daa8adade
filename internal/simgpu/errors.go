package simgpu

import (
	"errors"
	"fmt"
)

// ErrOutOfMemory is wrapped by the error Begin returns when the job does not
// fit in the simulated VRAM.
var ErrOutOfMemory = errors.New("simgpu: out of memory")

// oomError is the out-of-memory failure of one Begin, worded like PyTorch's
// CUDA message so that fakes can pass it on verbatim.
type oomError struct {
	gpu                     int
	need, total, used, free int64
}

// Error returns text in the shape of torch's CUDA OutOfMemoryError.
func (e *oomError) Error() string {
	return fmt.Sprintf("CUDA out of memory. Tried to allocate %s. GPU %d has a total capacity of %s of which %s is free. "+
		"Of the allocated memory %s is allocated by PyTorch.",
		formatGiB(e.need), e.gpu, formatGiB(e.total), formatGiB(e.free), formatGiB(e.used))
}

// Unwrap makes errors.Is(err, ErrOutOfMemory) true.
func (e *oomError) Unwrap() error { return ErrOutOfMemory }

// formatGiB writes n bytes as GiB or MiB the way torch does.
func formatGiB(n int64) string {
	if n >= GiB {
		return fmt.Sprintf("%.2f GiB", float64(n)/float64(GiB))
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/float64(1<<20))
}

// CUDAMessage returns the CUDA-style text of an out-of-memory error from
// this package (without the "simgpu:" context), or err's text otherwise.
func CUDAMessage(err error) string {
	var oom *oomError
	if errors.As(err, &oom) {
		return oom.Error()
	}
	return err.Error()
}
