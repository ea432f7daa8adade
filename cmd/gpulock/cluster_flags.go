package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/urfave/cli/v2"
)

// Flags of cluster mode (gpulock shim and gpulock gateway).
const (
	flagRedis     = "redis"
	flagNode      = "node"
	flagAdvertise = "advertise"
	flagLease     = "lease"
)

// shimClusterFlags are gpulock shim's cluster-mode flags.
func shimClusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagRedis, Usage: "cluster mode: the Redis shared with gateways, such as redis://10.0.0.5:6379/0", EnvVars: envVar(flagRedis)},
		&cli.StringFlag{Name: flagNode, Usage: "cluster mode: this machine's name (default: the hostname)", EnvVars: envVar(flagNode)},
		&cli.StringFlag{Name: flagAdvertise, Usage: "cluster mode: this shim's URL as gateways reach it, such as http://10.0.0.7:3188", EnvVars: envVar(flagAdvertise)},
		&cli.DurationFlag{Name: flagLease, Usage: "cluster mode: how long the registration lives without a renewal", Value: cluster.DefaultLease, EnvVars: envVar(flagLease)},
	}
}

// shimMember makes the shim a cluster member when --redis is set: it
// registers the GPU (refused while another live shim holds the same node,
// GPU and profile) and sets cfg.Member. The returned func closes Redis.
func shimMember(c *cli.Context, cfg *shim.Config, logger *slog.Logger) (func(), error) {
	hint := "gpulock shim --help"
	if c.String(flagRedis) == "" {
		if c.IsSet(flagAdvertise) || c.IsSet(flagNode) {
			return nil, usageError(hint, "--advertise and --node need --redis")
		}
		return func() {}, nil
	}
	if c.String(flagAdvertise) == "" {
		return nil, usageError(hint, "--redis needs --advertise, the shim's URL as gateways reach it")
	}
	if c.Duration(flagLease) < time.Second {
		return nil, usageError(hint, "--lease must be at least 1s")
	}
	rdb, err := cluster.Dial(c.String(flagRedis))
	if err != nil {
		return nil, usageError(hint, "%v", err)
	}
	m, err := cluster.NewMember(cluster.MemberConfig{Store: cluster.NewStore(rdb), Node: c.String(flagNode), GPU: cfg.GPU,
		Profile: cfg.Profile.Name, Advertise: c.String(flagAdvertise), Lease: c.Duration(flagLease), Logger: logger})
	if err != nil {
		_ = rdb.Close()
		return nil, usageError(hint, "%v", err)
	}
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
	defer cancel()
	if err := m.Register(ctx); err != nil {
		_ = rdb.Close()
		if errors.Is(err, cluster.ErrTaken) {
			return nil, exitf(exitUnavailable, "%v (%s)", err, m.ID())
		}
		return nil, exitf(exitUnavailable, "cannot register with the cluster's Redis: %v", err)
	}
	logger.Info("cluster member registered", "gpu", m.ID(), "advertise", c.String(flagAdvertise))
	cfg.Member = m
	return func() { _ = rdb.Close() }, nil
}
