package main

import (
	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/shim"
)

// Flags of fair turns of the shim; exec's, and those both share, are in
// internal/execcmd.
const (
	flagPriorityHeader = "priority-header"
	flagTrustProxy     = "trust-proxy"
)

// shimTurnFlags are the shim's flags of fair turns.
func shimTurnFlags() []cli.Flag {
	return []cli.Flag{
		fairFlag(), priorityFlag(),
		&cli.BoolFlag{Name: flagPriorityHeader, EnvVars: envVar(flagPriorityHeader),
			Usage: "let a request set its level with an X-GPULock-Priority header (anyone who can reach the shim could jump the line)"},
		&cli.StringFlag{Name: flagTrustProxy, EnvVars: envVar(flagTrustProxy),
			Usage: "addresses (127.0.0.1, 10.0.0.0/8; comma-separated) whose X-Forwarded-For names the client"},
	}
}

// shimTurns reads the shim's flags of fair turns.
func shimTurns(c *cli.Context, hint string) (shim.Turns, error) {
	p, err := gpulock.ParsePriority(c.String(flagPriority))
	if err != nil {
		return shim.Turns{}, usageError(hint, "--%s: %s", flagPriority, libText(err))
	}
	proxies, err := shim.ParseTrustedProxies(c.String(flagTrustProxy))
	if err != nil {
		return shim.Turns{}, usageError(hint, "%v", err)
	}
	return shim.Turns{ArrivalOrder: !c.Bool(flagFair), Priority: p,
		PriorityHeader: c.Bool(flagPriorityHeader), TrustedProxies: proxies}, nil
}
