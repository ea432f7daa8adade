package simgpu

// GiB is one gibibyte, for writing VRAM sizes.
const GiB int64 = 1 << 30

// Default sizes used when Options leaves a field zero.
const (
	// DefaultTotalVRAM is the memory of the simulated card.
	DefaultTotalVRAM = 24 * GiB
	// DefaultWorkingVRAM is the memory one running job needs besides its model.
	DefaultWorkingVRAM = 4 * GiB
)

// Options sizes the simulated GPU. Every process that opens the same GPU
// should pass the same Options; each process checks memory with its own.
type Options struct {
	// TotalVRAM is the card's memory in bytes. If zero, DefaultTotalVRAM.
	TotalVRAM int64
	// WorkingVRAM is the memory in bytes that each running job needs on top
	// of the resident models. If zero, DefaultWorkingVRAM.
	WorkingVRAM int64
}

// withDefaults returns o with zero fields replaced by the defaults.
func (o Options) withDefaults() Options {
	if o.TotalVRAM <= 0 {
		o.TotalVRAM = DefaultTotalVRAM
	}
	if o.WorkingVRAM <= 0 {
		o.WorkingVRAM = DefaultWorkingVRAM
	}
	return o
}
