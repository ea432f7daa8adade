package main

import (
	"log/slog"
	"net"
	"net/url"
	"os/signal"
	"syscall"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/urfave/cli/v2"
)

// Flags of gpulock shim.
const (
	flagListen       = "listen"
	flagUpstream     = "upstream"
	flagProfile      = "profile"
	flagGPURoute     = "gpu-route"
	flagMaxBody      = "max-body"
	flagMaxQueue     = "max-queue"
	flagQueueTimeout = "queue-timeout"
	flagMaxHold      = "max-hold"
	flagDrainTimeout = "drain-timeout"
	flagIdleTimeout  = "idle-timeout"
	flagFreeHandoff  = "free-on-handoff"
	flagVRAMTimeout  = "vram-timeout"
)

// shimCommand is `gpulock shim`: a reverse proxy in front of one web UI's
// port that holds the GPU lock while the backend really uses the GPU.
func (a *App) shimCommand() *cli.Command {
	return &cli.Command{
		Name:      "shim",
		Usage:     "proxy one web UI's port, holding the GPU lock while its jobs use the GPU",
		UsageText: "gpulock shim --listen 127.0.0.1:3188 --upstream http://127.0.0.1:8188 --gpu 0 --profile comfyui",
		Description: "Clients talk to --listen instead of the backend. GPU work waits in line for the GPU's lock,\n" +
			"shared with every other shim and gpulock user of that GPU; everything else passes straight through.\n" +
			"Bind the backend to 127.0.0.1 so that every job passes a shim. SIGTERM stops gracefully:\n" +
			"requests in line get 503, running jobs get --drain-timeout to finish.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: flagListen, Usage: "address to serve on, such as 127.0.0.1:3188", Required: true, EnvVars: envVar(flagListen)},
			&cli.StringFlag{Name: flagUpstream, Usage: "the backend's base URL, such as http://127.0.0.1:8188", Required: true, EnvVars: envVar(flagUpstream)},
			&cli.IntFlag{Name: flagGPU, Usage: "the GPU the backend uses (nvidia-smi's number)", Value: 0, EnvVars: envVar(flagGPU)},
			&cli.StringFlag{Name: flagProfile, Usage: "the backend: " + shim.ProfileNames, Value: "generic", EnvVars: envVar(flagProfile)},
			&cli.StringFlag{Name: flagName, Usage: "the service name others see (default: the profile)", EnvVars: envVar(flagName)},
			&cli.StringSliceFlag{Name: flagGPURoute, Usage: "another GPU route, \"METHOD /path\" with * wildcards (repeatable)", EnvVars: envVar(flagGPURoute)},
			&cli.Int64Flag{Name: flagMaxBody, Usage: "largest GPU request body in bytes; larger ones get 413", Value: shim.DefaultMaxBody, EnvVars: envVar(flagMaxBody)},
			&cli.IntFlag{Name: flagMaxQueue, Usage: "most requests waiting in line; more get 503 (0: no limit)", EnvVars: envVar(flagMaxQueue)},
			&cli.DurationFlag{Name: flagQueueTimeout, Usage: "longest wait in line; then 503 (0: no limit)", EnvVars: envVar(flagQueueTimeout)},
			&cli.DurationFlag{Name: flagMaxHold, Usage: "interrupt a job that holds the GPU longer (0: off; default 30m for comfyui, off otherwise)", EnvVars: envVar(flagMaxHold)},
			&cli.DurationFlag{Name: flagDrainTimeout, Usage: "on SIGTERM, how long running jobs may take to finish", Value: shim.DefaultDrainTimeout, EnvVars: envVar(flagDrainTimeout)},
			&cli.DurationFlag{Name: flagIdleTimeout, Usage: "how long to wait for a busy backend to report idle", Value: shim.DefaultIdleTimeout, EnvVars: envVar(flagIdleTimeout)},
			&cli.BoolFlag{Name: flagFreeHandoff, Usage: "when the next in line is another service, make the backend free its VRAM first", EnvVars: envVar(flagFreeHandoff)},
			&cli.DurationFlag{Name: flagVRAMTimeout, Usage: "how long to wait for the backend to free its VRAM", Value: shim.DefaultVRAMTimeout, EnvVars: envVar(flagVRAMTimeout)},
		}, shimTurnFlags()...),
		Action: a.runShim,
	}
}

func (a *App) runShim(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("gpulock shim --help", "gpulock shim takes no arguments, got %q", c.Args().First())
	}
	cfg, err := shimConfig(c)
	if err != nil {
		return err
	}
	if err := checkLockDir(cfg.LockDir); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, nil))
	s, err := shim.New(cfg)
	if err != nil {
		return usageError("gpulock shim --help", "%v", err)
	}
	if err := checkShimLock(s.Lock()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String(flagListen))
	if err != nil {
		return exitf(exitUnavailable, "cannot listen on %s: %v", c.String(flagListen), err)
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	cfg.Logger.Info("gpulock shim serving", "listen", ln.Addr().String(), "upstream", cfg.Upstream.Redacted(),
		"gpu", cfg.GPU, "profile", cfg.Profile.Name, "lock", s.Lock().Path())
	if err := s.Serve(ctx, ln); err != nil {
		return exitf(exitSoftware, "shim stopped: %v", err)
	}
	return nil
}

// shimConfig reads the shim's flags.
func shimConfig(c *cli.Context) (shim.Config, error) {
	hint := "gpulock shim --help"
	u, err := url.Parse(c.String(flagUpstream))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return shim.Config{}, usageError(hint, "--upstream %q is not an http:// URL such as http://127.0.0.1:8188", c.String(flagUpstream))
	}
	gpu := c.Int(flagGPU)
	if gpu < 0 || gpu > gpulock.MaxGPU {
		return shim.Config{}, usageError(hint, "--gpu %d is out of range 0-%d", gpu, gpulock.MaxGPU)
	}
	profile, err := shim.LookupProfile(c.String(flagProfile))
	if err != nil {
		return shim.Config{}, usageError(hint, "%v", err)
	}
	var routes []shim.Route
	for _, s := range c.StringSlice(flagGPURoute) {
		r, err := shim.ParseRoute(s)
		if err != nil {
			return shim.Config{}, usageError(hint, "%v", err)
		}
		routes = append(routes, r)
	}
	for _, f := range []string{flagMaxBody, flagMaxQueue} {
		if c.Int64(f) < 0 {
			return shim.Config{}, usageError(hint, "--%s cannot be negative", f)
		}
	}
	for _, f := range []string{flagQueueTimeout, flagMaxHold, flagDrainTimeout, flagIdleTimeout, flagVRAMTimeout} {
		if c.Duration(f) < 0 {
			return shim.Config{}, usageError(hint, "--%s cannot be negative", f)
		}
	}
	turns, err := shimTurns(c, hint)
	if err != nil {
		return shim.Config{}, err
	}
	maxHold := c.Duration(flagMaxHold)
	if c.IsSet(flagMaxHold) && maxHold == 0 {
		maxHold = -1 // explicitly off
	}
	return shim.Config{
		Upstream:      u,
		GPU:           gpu,
		LockDir:       lockDir(c),
		Profile:       profile,
		Name:          c.String(flagName),
		GPURoutes:     routes,
		MaxBody:       c.Int64(flagMaxBody),
		MaxQueue:      c.Int(flagMaxQueue),
		QueueTimeout:  c.Duration(flagQueueTimeout),
		MaxHold:       maxHold,
		DrainTimeout:  c.Duration(flagDrainTimeout),
		IdleTimeout:   c.Duration(flagIdleTimeout),
		FreeOnHandoff: c.Bool(flagFreeHandoff),
		VRAMTimeout:   c.Duration(flagVRAMTimeout),
		Turns:         turns,
	}, nil
}
