package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/internal/demo"
	"github.com/urfave/cli/v2"
)

// Flags of gpulock demo.
const (
	flagGPUs    = "gpus"
	flagJobs    = "jobs"
	flagClients = "clients"
	flagHold    = "hold"
)

// demoCommand is `gpulock demo`: fake ComfyUI and A1111 backends on
// simulated GPUs, with and without gpulock, side by side. Nothing to install.
func (a *App) demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "show what gpulock does, on simulated GPUs with fake ComfyUI and A1111 backends (about 10 s)",
		Description: "Starts, on loopback, a fake ComfyUI and a fake A1111 on each simulated GPU and a shim in front of\n" +
			"each, sends a mixed load of API clients through the shims, then sends the same load straight to the\n" +
			"backends, and prints jobs done, overlaps, out-of-memory failures, GPU busy time and waits side by side.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: flagGPUs, Usage: "simulated GPUs", Value: 1, EnvVars: envVar(flagGPUs)},
			&cli.IntFlag{Name: flagJobs, Usage: "jobs per service and GPU", Value: 12, EnvVars: envVar(flagJobs)},
			&cli.IntFlag{Name: flagClients, Usage: "concurrent clients per service and GPU", Value: 4, EnvVars: envVar(flagClients)},
			&cli.BoolFlag{Name: flagHold, Usage: "keep the shims' status pages (printed at the start) open after the demo, until Ctrl-C", EnvVars: envVar(flagHold)},
			&cli.DurationFlag{Name: flagStep, Usage: "time of one simulated sampling step", Value: 20 * time.Millisecond, EnvVars: envVar(flagStep)},
		},
		Action: a.runDemo,
	}
}

func (a *App) runDemo(c *cli.Context) error {
	hint := "gpulock demo --help"
	if c.Args().Present() {
		return usageError(hint, "gpulock demo takes no arguments, got %q", c.Args().First())
	}
	for _, f := range []string{flagGPUs, flagJobs, flagClients} {
		if n := c.Int(f); n < 1 || n > 64 {
			return usageError(hint, "--%s %d is out of range 1-64", f, n)
		}
	}
	if c.Duration(flagStep) <= 0 {
		return usageError(hint, "--%s must be positive", flagStep)
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out, live := a.stdout, false
	if f, ok := a.stdout.(*os.File); ok {
		live = isTerminal(int(f.Fd()))
	}
	_, err := demo.Run(ctx, demo.Options{
		GPUs:           c.Int(flagGPUs),
		JobsPerService: c.Int(flagJobs),
		Clients:        c.Int(flagClients),
		Step:           c.Duration(flagStep),
		Out:            out,
		Live:           live,
		Hold:           c.Bool(flagHold),
	})
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return exitf(exitSignalBase+int(syscall.SIGINT), "demo interrupted")
		}
		return exitf(exitSoftware, "demo failed: %v", err)
	}
	return nil
}
