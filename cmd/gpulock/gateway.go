package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/gateway"
	"github.com/urfave/cli/v2"
)

// Flags of `gpulock gateway` only.
const (
	flagAllowGlobalInterrupt = "allow-global-interrupt"
	flagAllowFree            = "allow-free"
)

// gatewayCommand is `gpulock gateway`: the HTTP front of a cluster of
// shims for one profile, with one line of jobs in Redis.
func (a *App) gatewayCommand() *cli.Command {
	return &cli.Command{
		Name:      "gateway",
		Usage:     "serve one line of GPU jobs for many machines' shims (cluster mode, on Redis)",
		UsageText: "gpulock gateway --listen :8188 --profile comfyui --redis redis://10.0.0.5:6379/0",
		Description: "Clients talk to --listen. Each GPU request waits in the cluster's one line in Redis and goes to\n" +
			"the first GPU that frees, on any machine whose shim runs with --redis. A GPU busy or unreachable\n" +
			"before it took the job sends the job back to its place in line; a job that started is never run twice.\n" +
			"With --fair (the default) the line takes turns between clients (ComfyUI client_id, X-GPULock-Client,\n" +
			"else the address) and puts higher --priority first, as the shim does.\n" +
			"A1111's POST /sdapi/v1/options sets the options of every machine: a model change runs as a GPU job on\n" +
			"each, in line, and machines that join later apply it first. /gpulock/status (?client=ID) shows the\n" +
			"cluster, as `gpulock status --redis` does.\n" +
			"Other requests go to any live machine.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: flagListen, Usage: "address to serve on, such as :8188", Required: true, EnvVars: envVar(flagListen)},
			&cli.StringFlag{Name: flagProfile, Usage: "the backend: " + gateway.Profiles, Required: true, EnvVars: envVar(flagProfile)},
			&cli.StringFlag{Name: flagRedis, Usage: "the cluster's Redis, such as redis://10.0.0.5:6379/0", Required: true, EnvVars: envVar(flagRedis)},
			&cli.IntFlag{Name: flagMaxQueue, Usage: "most jobs waiting in the cluster's line; more get 503 (0: no limit)", EnvVars: envVar(flagMaxQueue)},
			&cli.DurationFlag{Name: flagQueueTimeout, Usage: "longest wait in line; then 503 with Retry-After (0: no limit)", EnvVars: envVar(flagQueueTimeout)},
			&cli.GenericFlag{Name: flagMaxUpload, Usage: "largest ComfyUI upload (/upload/image, /upload/mask), in bytes or with a unit (64MiB); Redis keeps each for machines that join later; larger ones get 413", Value: &sizeValue{n: gateway.MaxUploadBytes}, EnvVars: envVar(flagMaxUpload)},
			&cli.GenericFlag{Name: flagMaxKeptUploads, Usage: "most bytes of ComfyUI uploads Redis keeps in all (the oldest are evicted first, logged)", Value: &sizeValue{n: gateway.MaxKeptUploadBytes}, EnvVars: envVar(flagMaxKeptUploads)},
			&cli.DurationFlag{Name: flagLease, Usage: "the shims' --lease: an unreachable machine is left out that long", Value: cluster.DefaultLease, EnvVars: envVar(flagLease)},
			&cli.BoolFlag{Name: flagAllowGlobalInterrupt, Usage: "comfyui: let POST /interrupt without a prompt_id or clientId stop what runs on every machine (else 400)", EnvVars: envVar(flagAllowGlobalInterrupt)},
			&cli.BoolFlag{Name: flagAllowFree, Usage: "comfyui: let POST /free unload the models of every machine (else 403)", EnvVars: envVar(flagAllowFree)},
		}, shimTurnFlags()...),
		Action: a.runGateway,
	}
}

func (a *App) runGateway(c *cli.Context) error {
	hint := "gpulock gateway --help"
	if c.Args().Present() {
		return usageError(hint, "gpulock gateway takes no arguments, got %q", c.Args().First())
	}
	if c.Int(flagMaxQueue) < 0 || c.Duration(flagQueueTimeout) < 0 || c.Duration(flagLease) < 0 {
		return usageError(hint, "--max-queue, --queue-timeout and --lease cannot be negative")
	}
	turns, err := shimTurns(c, hint)
	if err != nil {
		return err
	}
	rdb, err := cluster.Dial(c.String(flagRedis))
	if err != nil {
		return usageError(hint, "%v", err)
	}
	defer rdb.Close()
	logger := slog.New(slog.NewTextHandler(a.stderr, nil))
	g, err := gateway.New(gateway.Config{Profile: c.String(flagProfile), Store: cluster.NewStore(rdb),
		MaxQueue: c.Int(flagMaxQueue), QueueTimeout: c.Duration(flagQueueTimeout), Lease: c.Duration(flagLease), Turns: turns, Logger: logger,
		AllowGlobalInterrupt: c.Bool(flagAllowGlobalInterrupt), AllowFree: c.Bool(flagAllowFree),
		MaxUpload: c.Generic(flagMaxUpload).(*sizeValue).n, MaxKeptUploads: c.Generic(flagMaxKeptUploads).(*sizeValue).n})
	if err != nil {
		return usageError(hint, "%v", err)
	}
	ln, err := net.Listen("tcp", c.String(flagListen))
	if err != nil {
		return exitf(exitUnavailable, "cannot listen on %s: %v", c.String(flagListen), err)
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	g.Start()
	defer g.Close()
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("gpulock gateway serving", "listen", ln.Addr().String(), "profile", c.String(flagProfile))
	select {
	case err := <-served:
		return exitf(exitSoftware, "gateway stopped: %v", err)
	case <-ctx.Done():
	}
	drainCtx, cancel := contextWithTimeout(time.Minute)
	defer cancel()
	err = srv.Shutdown(drainCtx)
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return exitf(exitSoftware, "gateway stopped: %v", serr)
	}
	if err != nil {
		return exitf(exitSoftware, "gateway did not drain: %v", err)
	}
	return nil
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// flagMaxUpload bounds a ComfyUI upload through the gateway.
const flagMaxUpload = "max-upload"

// flagMaxKeptUploads bounds the uploads Redis keeps in all.
const flagMaxKeptUploads = "max-kept-uploads"
