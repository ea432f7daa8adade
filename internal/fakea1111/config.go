package fakea1111

import (
	"time"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// Defaults used when Config leaves a field zero.
const (
	// DefaultService is the simgpu service name of the fake.
	DefaultService = "a1111"
	// DefaultModelBytes is the VRAM the loaded checkpoint takes.
	DefaultModelBytes = 4 * simgpu.GiB
	// DefaultStepDuration is the time of one sampling step.
	DefaultStepDuration = 20 * time.Millisecond
	// DefaultSteps is A1111's default step count when a request gives none.
	DefaultSteps = 50
	// DefaultModelLoadDuration is the time a checkpoint takes to load.
	DefaultModelLoadDuration = 100 * time.Millisecond
	// DefaultGradioDataTimeout is how long gradio 3.41's queue waits for a
	// client's data frame after asking for it (gather_event_data).
	DefaultGradioDataTimeout = 60 * time.Second
	// extrasSteps is the steps of work an extras or interrogate job takes.
	extrasSteps = 3
)

// Config configures a fake A1111 server.
type Config struct {
	// GPU is the simulated GPU the jobs run on. If nil, jobs take their
	// time but touch no simulated GPU.
	GPU *simgpu.GPU
	// Service names the fake on the GPU. If empty, DefaultService.
	Service string
	// ModelBytes is the VRAM the checkpoint takes. If zero, DefaultModelBytes.
	ModelBytes int64
	// StepDuration is the time of one sampling step. If zero,
	// DefaultStepDuration.
	StepDuration time.Duration
	// DefaultSteps is the steps of a request without "steps". If zero,
	// DefaultSteps (50, as A1111).
	DefaultSteps int
	// ModelLoadDuration is the time a checkpoint change or reload takes.
	// If zero, DefaultModelLoadDuration.
	ModelLoadDuration time.Duration
	// GradioDataTimeout is how long /queue/join waits for the data frame
	// after send_data. If zero, DefaultGradioDataTimeout.
	GradioDataTimeout time.Duration
}

// withDefaults returns c with zero fields replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.Service == "" {
		c.Service = DefaultService
	}
	if c.ModelBytes == 0 {
		c.ModelBytes = DefaultModelBytes
	}
	if c.StepDuration == 0 {
		c.StepDuration = DefaultStepDuration
	}
	if c.DefaultSteps == 0 {
		c.DefaultSteps = DefaultSteps
	}
	if c.ModelLoadDuration == 0 {
		c.ModelLoadDuration = DefaultModelLoadDuration
	}
	if c.GradioDataTimeout == 0 {
		c.GradioDataTimeout = DefaultGradioDataTimeout
	}
	return c
}
