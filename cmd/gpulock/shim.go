package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

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
	flagMaxBuffered  = "max-buffered"
	flagBodyTimeout  = "body-timeout"
	flagHeaderTime   = "header-timeout"
	flagKeepAlive    = "keepalive-timeout"
	flagStatusDetail = "status-detail"
)

// shimCommand is `gpulock shim`: a reverse proxy in front of one web UI's
// port that holds the GPU lock while the backend really uses the GPU.
func (a *App) shimCommand() *cli.Command {
	return &cli.Command{
		Name:      "shim",
		Usage:     "proxy one web UI's port, holding the GPU lock while its jobs use the GPU",
		UsageText: "gpulock shim --listen 127.0.0.1:3188 --upstream http://127.0.0.1:8188 --gpu 0 --profile comfyui [-- python main.py ...]",
		Description: "Clients talk to --listen instead of the backend. GPU work waits in line for the GPU's lock,\n" +
			"shared with every other shim and gpulock user of that GPU; everything else passes straight through.\n" +
			"Bind the backend to 127.0.0.1 so that every job passes a shim. SIGTERM stops gracefully:\n" +
			"requests in line get 503, running jobs get --drain-timeout to finish.\n" +
			"With -- COMMAND the shim starts the backend as its child, serves once it answers, forwards\n" +
			"SIGTERM to it, ends with it (and its exit status), and the backend dies with the shim.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: flagListen, Usage: "address to serve on, host:port such as 127.0.0.1:3188 (required)", EnvVars: envVar(flagListen)},
			&cli.StringFlag{Name: flagUpstream, Usage: "the backend's base URL, such as http://127.0.0.1:8188 (required)", EnvVars: envVar(flagUpstream)},
			&cli.GenericFlag{Name: flagGPU, Usage: "the GPU the backend uses (nvidia-smi's number; one shim serves one GPU)", Value: &gpuValue{}, EnvVars: envVar(flagGPU)},
			&cli.StringFlag{Name: flagProfile, Usage: "the backend: " + shim.ProfileNames, Value: "generic", EnvVars: envVar(flagProfile)},
			&cli.StringFlag{Name: flagName, Usage: "the service name others see (default: the profile)", EnvVars: envVar(flagName)},
			&cli.StringSliceFlag{Name: flagGPURoute, Usage: "another GPU route, \"METHOD /path\" with * wildcards (repeatable)", EnvVars: envVar(flagGPURoute)},
			&cli.GenericFlag{Name: flagMaxBody, Usage: "largest GPU request body, in bytes or with a unit (256MiB, 1GB); larger ones get 413", Value: &sizeValue{n: shim.DefaultMaxBody}, EnvVars: envVar(flagMaxBody)},
			&cli.IntFlag{Name: flagMaxQueue, Usage: "most requests waiting in line; more get 503 (0: no limit)", EnvVars: envVar(flagMaxQueue)},
			durationFlag(flagQueueTimeout, "longest wait in line; then 503 (0: no limit)", 0),
			withDefaultText(durationFlag(flagMaxHold, "longest a job may hold the GPU: comfyui and a1111 are then told to interrupt it, "+
				"and the GPU is released when it stops or --idle-timeout later; a generic backend cannot be interrupted: "+
				"its request is cut off (504) and the GPU released at once (0: off)", 0), "30m for comfyui, off otherwise"),
			durationFlag(flagDrainTimeout, "on SIGTERM, how long running jobs may take to finish", shim.DefaultDrainTimeout),
			durationFlag(flagIdleTimeout, "how long to wait for a busy backend to report idle", shim.DefaultIdleTimeout),
			&cli.BoolFlag{Name: flagFreeHandoff, Usage: "when the next in line is another service, make the backend free its VRAM first", EnvVars: envVar(flagFreeHandoff)},
			durationFlag(flagVRAMTimeout, "how long to wait for the backend to free its VRAM", shim.DefaultVRAMTimeout),
			&cli.GenericFlag{Name: flagMaxBuffered, Usage: "most bytes of GPU request bodies held in memory at once, in bytes or with a unit (1GiB); more get 503", Value: &sizeValue{}, DefaultText: "1GiB, or --max-body if larger", EnvVars: envVar(flagMaxBuffered)},
			durationFlag(flagBodyTimeout, "longest time to receive a request's body; slower gets 408 (0: off); the wait in line does not count", shim.DefaultBodyTimeout),
			durationFlag(flagHeaderTime, "longest time to receive a request's headers", shim.DefaultHeaderTimeout),
			durationFlag(flagKeepAlive, "how long an idle keep-alive connection stays open", shim.DefaultKeepAliveTimeout),
			&cli.BoolFlag{Name: flagStatusDetail, Usage: "show command lines, request ids and the upstream in /gpulock/status to every caller, not only to loopback ones", EnvVars: envVar(flagStatusDetail)},
		}, slices.Concat(shimChildFlags(), shimClusterFlags(), shimTurnFlags())...), // shim_child.go, cluster_flags.go, turnflags.go
		Action: a.runShim,
	}
}

func (a *App) runShim(c *cli.Context) error {
	cfg, err := shimConfig(c)
	if err != nil {
		return err
	}
	if err := checkLockDir(cfg.LockDir); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, nil))
	closeMember, err := shimMember(c, &cfg, cfg.Logger) // cluster mode: cluster_flags.go
	if err != nil {
		return err
	}
	defer closeMember()
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
	if c.Args().Present() { // gpulock shim ... -- COMMAND: the backend is our child
		return a.serveWithBackend(c, cfg, s, ln, c.Args().Slice())
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
	var missing []string
	for _, f := range []string{flagListen, flagUpstream} {
		if c.String(f) == "" {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return shim.Config{}, usageError(hint, "missing %s", strings.Join(missing, " and "))
	}
	if err := checkListen(c.String(flagListen)); err != nil {
		return shim.Config{}, usageError(hint, "%v", err)
	}
	u, err := url.Parse(c.String(flagUpstream))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return shim.Config{}, usageError(hint, "--upstream %q is not an http:// URL such as http://127.0.0.1:8188", c.String(flagUpstream))
	}
	gpu := c.Generic(flagGPU).(*gpuValue).n
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
	if c.Int(flagMaxQueue) < 0 {
		return shim.Config{}, usageError(hint, "--%s cannot be negative", flagMaxQueue)
	}
	turns, err := shimTurns(c, hint)
	if err != nil {
		return shim.Config{}, err
	}
	maxHold := durationOf(c, flagMaxHold)
	if c.IsSet(flagMaxHold) && maxHold == 0 {
		maxHold = -1 // explicitly off
	}
	bodyTimeout := durationOf(c, flagBodyTimeout)
	if bodyTimeout == 0 {
		bodyTimeout = -1 // explicitly off
	}
	return shim.Config{
		Upstream:      u,
		GPU:           gpu,
		LockDir:       lockDir(c),
		Profile:       profile,
		Name:          c.String(flagName),
		GPURoutes:     routes,
		MaxBody:       c.Generic(flagMaxBody).(*sizeValue).n,
		MaxQueue:      c.Int(flagMaxQueue),
		QueueTimeout:  durationOf(c, flagQueueTimeout),
		MaxHold:       maxHold,
		DrainTimeout:  durationOf(c, flagDrainTimeout),
		IdleTimeout:   durationOf(c, flagIdleTimeout),
		FreeOnHandoff: c.Bool(flagFreeHandoff),
		VRAMTimeout:   durationOf(c, flagVRAMTimeout),
		Turns:         turns,

		MaxBuffered:      c.Generic(flagMaxBuffered).(*sizeValue).n,
		BodyTimeout:      bodyTimeout,
		HeaderTimeout:    durationOf(c, flagHeaderTime),
		KeepAliveTimeout: durationOf(c, flagKeepAlive),
		StatusDetail:     c.Bool(flagStatusDetail),
	}, nil
}

// checkListen wants --listen as host:port; a bare port is a common slip.
func checkListen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		if _, perr := strconv.Atoi(addr); perr == nil {
			return fmt.Errorf("--listen %s: give host:port, e.g. 127.0.0.1:%s", addr, addr)
		}
		return fmt.Errorf("--listen %s: give host:port, e.g. 127.0.0.1:3188", addr)
	}
	return nil
}
