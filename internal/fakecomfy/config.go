package fakecomfy

import (
	"time"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// Defaults used when Config leaves a field zero.
const (
	// DefaultService is the simgpu service name of the fake.
	DefaultService = "comfyui"
	// DefaultModelBytes is the VRAM a loaded checkpoint takes.
	DefaultModelBytes = 6 * simgpu.GiB
	// DefaultStepDuration is the time one sampling step takes.
	DefaultStepDuration = 20 * time.Millisecond
	// DefaultMaxUploadBytes is ComfyUI's default upload limit (100 MB).
	DefaultMaxUploadBytes = 100 << 20
)

// Config configures a fake ComfyUI server.
type Config struct {
	// GPU is the simulated GPU the prompts run on. If nil, prompts take
	// their time but touch no simulated GPU.
	GPU *simgpu.GPU
	// Previews sends a binary preview frame to the prompt's client after
	// each sampling step, as ComfyUI does with latent previews on.
	Previews bool
	// Service names the fake on the GPU. If empty, DefaultService.
	Service string
	// ModelBytes is the VRAM the checkpoint takes once loaded. If zero,
	// DefaultModelBytes.
	ModelBytes int64
	// StepDuration is the time of one KSampler step. If zero,
	// DefaultStepDuration.
	StepDuration time.Duration
	// MaxUploadBytes limits POST /upload/image bodies. If zero,
	// DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// ModelLoad is the time a CheckpointLoaderSimple node takes
	// when it names another model than the last one loaded (or after
	// POST /free); zero: loads take no time and are not counted.
	ModelLoad time.Duration
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
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	return c
}
