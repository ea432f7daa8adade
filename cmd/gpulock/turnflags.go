package main

import (
	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/shim"
)

// Flags of fair turns and priorities, shared by exec and shim.
const (
	flagFair           = "fair"
	flagPriority       = "priority"
	flagClient         = "client"
	flagPriorityHeader = "priority-header"
	flagTrustProxy     = "trust-proxy"
)

func fairFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagFair, Value: true, EnvVars: envVar(flagFair),
		Usage: "take turns round-robin between clients that wait; --fair=false: plain arrival order"}
}

func priorityFlag() cli.Flag {
	return &cli.StringFlag{Name: flagPriority, Value: "normal", EnvVars: envVar(flagPriority),
		Usage: "level in line: low, normal or high; a wait rises one level per 30s waited"}
}

// execTurnFlags are exec's flags of fair turns.
func execTurnFlags() []cli.Flag {
	return []cli.Flag{
		fairFlag(), priorityFlag(),
		&cli.StringFlag{Name: flagClient, EnvVars: envVar(flagClient), DefaultText: "uid:<your uid>",
			Usage: "who this job is for, for fair turns between clients"},
	}
}

// execTurnOptions reads exec's flags of fair turns as lock options.
func execTurnOptions(c *cli.Context) ([]gpulock.Option, error) {
	p, err := gpulock.ParsePriority(c.String(flagPriority))
	if err != nil {
		return nil, usageError(execHelp, "--%s: %s", flagPriority, libText(err))
	}
	return []gpulock.Option{gpulock.WithFairTurns(c.Bool(flagFair)), gpulock.WithPriority(p),
		gpulock.WithClient(c.String(flagClient))}, nil
}

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
