package main

import (
	"context"
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
			"backends, and prints jobs done, overlaps, out-of-memory failures, GPU busy time and waits side by side.\n" +
			"The lock files go in a temporary directory unless --lock-dir names one (watch it with\n" +
			"`gpulock status --watch --lock-dir DIR`); $GPULOCK_DIR is not used, since the simulated GPUs are\n" +
			"numbered like real ones. Stopped by SIGINT or SIGTERM, it exits 128+N (130, 143).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: flagGPUs, Usage: "simulated GPUs", Value: 1, EnvVars: envVar(flagGPUs)},
			&cli.IntFlag{Name: flagJobs, Usage: "jobs per service and GPU", Value: 12, EnvVars: envVar(flagJobs)},
			&cli.IntFlag{Name: flagClients, Usage: "concurrent clients per service and GPU", Value: 4, EnvVars: envVar(flagClients)},
			&cli.BoolFlag{Name: flagHold, Usage: "keep the shims' status pages (printed at the start) open after the demo, until Ctrl-C", EnvVars: envVar(flagHold)},
			durationFlag(flagStep, "time of one simulated sampling step", 20*time.Millisecond),
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
	if durationOf(c, flagStep) <= 0 {
		return usageError(hint, "--%s must be positive", flagStep)
	}
	ctx, cancel := context.WithCancelCause(c.Context)
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	watchDone := make(chan struct{})
	watchEnded := make(chan struct{})
	go func() {
		defer close(watchEnded)
		select {
		case s := <-sigs:
			cancel(signalCause{Sig: s.(syscall.Signal)})
		case <-watchDone:
		}
	}()
	defer func() { close(watchDone); <-watchEnded }()
	lockDir, _ := givenLockDir(c) // "" for a temporary one
	out, live := a.stdout, false
	if f, ok := a.stdout.(*os.File); ok {
		live = isTerminal(int(f.Fd()))
	}
	_, err := demo.Run(ctx, demo.Options{
		GPUs:           c.Int(flagGPUs),
		JobsPerService: c.Int(flagJobs),
		Clients:        c.Int(flagClients),
		Step:           durationOf(c, flagStep),
		Out:            out,
		Live:           live,
		LockDir:        lockDir,
		Hold:           c.Bool(flagHold),
	})
	if err != nil {
		var sc signalCause
		if errors.As(context.Cause(ctx), &sc) {
			return exitf(exitSignalBase+int(sc.Sig), "demo %s", sc)
		}
		return exitf(exitSoftware, "demo failed: %v", err)
	}
	return nil
}
