package main

import (
	"errors"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/internal/fakea1111"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/urfave/cli/v2"
)

// Flags of gpulock fake.
const (
	flagSimDir      = "sim-dir"
	flagStep        = "step"
	flagModelGiB    = "model-gib"
	flagVRAMGiB     = "vram-gib"
	flagWorkingGiB  = "working-gib"
	flagDefaultStep = "default-steps"
)

// fakeCommand is the hidden `gpulock fake comfyui|a1111`: a fake backend on
// a simulated GPU, for tests, the demo and trying the shim without a GPU.
func (a *App) fakeCommand() *cli.Command {
	return &cli.Command{
		Name:      "fake",
		Usage:     "run a fake ComfyUI or A1111 on a simulated GPU (for tests and demos)",
		UsageText: "gpulock fake --listen 127.0.0.1:8188 --sim-dir DIR [--gpu N] comfyui|a1111",
		Hidden:    true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagListen, Usage: "address to serve on, host:port (required)"},
			&cli.StringFlag{Name: flagSimDir, Usage: "directory of the simulated GPUs' state, shared by every fake on the machine (required)"},
			&cli.IntFlag{Name: flagGPU, Usage: "the simulated GPU", Value: 0},
			&cli.GenericFlag{Name: flagStep, Usage: "time of one sampling step", Value: newDurationValue(20 * time.Millisecond)},
			&cli.Float64Flag{Name: flagModelGiB, Usage: "VRAM of the backend's model in GiB (0: the fake's default)"},
			&cli.Float64Flag{Name: flagVRAMGiB, Usage: "the simulated card's VRAM in GiB", Value: 24},
			&cli.Float64Flag{Name: flagWorkingGiB, Usage: "VRAM a running job needs beside the models, in GiB", Value: 4},
			&cli.IntFlag{Name: flagDefaultStep, Usage: "A1111 steps of a request that gives none", Value: 20},
		},
		Action: a.runFake,
	}
}

func (a *App) runFake(c *cli.Context) error {
	hint := "gpulock fake --help"
	kind := c.Args().First()
	if c.NArg() != 1 || (kind != "comfyui" && kind != "a1111") {
		return usageError(hint, "say which fake to run: comfyui or a1111")
	}
	var missing []string
	for _, f := range []string{flagListen, flagSimDir} {
		if c.String(f) == "" {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return usageError(hint, "missing %s", strings.Join(missing, " and "))
	}
	if err := checkListen(c.String(flagListen)); err != nil {
		return usageError(hint, "%v", err)
	}
	step := durationOf(c, flagStep)
	if step <= 0 {
		return usageError(hint, "--%s must be positive", flagStep)
	}
	gib := func(f string) int64 { return int64(c.Float64(f) * float64(simgpu.GiB)) }
	gpu, err := simgpu.Open(c.String(flagSimDir), c.Int(flagGPU), simgpu.Options{TotalVRAM: gib(flagVRAMGiB), WorkingVRAM: gib(flagWorkingGiB)})
	if err != nil {
		return exitf(exitCantCreate, "simulated GPU: %v", err)
	}
	var handler http.Handler
	var closeFake func() error
	switch kind {
	case "comfyui":
		s, err := fakecomfy.New(fakecomfy.Config{GPU: gpu, StepDuration: step, ModelBytes: gib(flagModelGiB)})
		if err != nil {
			return usageError(hint, "%v", err)
		}
		handler, closeFake = s, s.Close
	case "a1111":
		s, err := fakea1111.New(fakea1111.Config{GPU: gpu, StepDuration: step, ModelBytes: gib(flagModelGiB), DefaultSteps: c.Int(flagDefaultStep)})
		if err != nil {
			return usageError(hint, "%v", err)
		}
		handler, closeFake = s, s.Close
	}
	defer closeFake()
	ln, err := net.Listen("tcp", c.String(flagListen))
	if err != nil {
		return exitf(exitUnavailable, "cannot listen on %s: %v", c.String(flagListen), err)
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return exitf(exitSoftware, "fake %s: %v", kind, err)
	}
	return nil
}
