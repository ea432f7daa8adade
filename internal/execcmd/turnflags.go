package execcmd

import (
	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/gpulock"
)

// Flags of fair turns and priorities, shared by exec and shim.
const (
	FlagFair     = "fair"
	FlagPriority = "priority"
	FlagClient   = "client"
)

// FairFlag is --fair, of exec and the shim.
func FairFlag() cli.Flag {
	return &cli.BoolFlag{Name: FlagFair, Value: true, EnvVars: EnvVar(FlagFair),
		Usage: "take turns round-robin between clients that wait; --fair=false: plain arrival order"}
}

// PriorityFlag is --priority, of exec and the shim.
func PriorityFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagPriority, Value: "normal", EnvVars: EnvVar(FlagPriority),
		Usage: "level in line: low, normal or high; a wait rises one level per 30s waited"}
}

// execTurnFlags are exec's flags of fair turns.
func execTurnFlags() []cli.Flag {
	return []cli.Flag{
		FairFlag(), PriorityFlag(),
		&cli.StringFlag{Name: FlagClient, EnvVars: EnvVar(FlagClient), DefaultText: "uid:<your uid>",
			Usage: "who this job is for, for fair turns between clients"},
	}
}

// execTurnOptions reads exec's flags of fair turns as lock options.
func execTurnOptions(c *cli.Context) ([]gpulock.Option, error) {
	p, err := gpulock.ParsePriority(c.String(FlagPriority))
	if err != nil {
		return nil, UsageError(execHelp, "--%s: %s", FlagPriority, LibText(err))
	}
	return []gpulock.Option{gpulock.WithFairTurns(c.Bool(FlagFair)), gpulock.WithPriority(p),
		gpulock.WithClient(c.String(FlagClient))}, nil
}
