package execcmd

import (
	"github.com/gpulock/gpulock/gpulock"
)

// Flags of fair turns and priorities, shared by exec and shim.
const (
	FlagFair     = "fair"
	FlagPriority = "priority"
	FlagClient   = "client"
)

// execTurnSpecs are exec's flags of fair turns.
func execTurnSpecs() []FlagSpec {
	return []FlagSpec{
		FairSpec(), PrioritySpec(),
		{Name: FlagClient, Kind: StringKind, EnvVars: EnvVar(FlagClient), DefaultText: "uid:<your uid>",
			Usage: "who this job is for, for fair turns between clients"},
	}
}

// execTurns is what exec's flags of fair turns asked for.
type execTurns struct {
	fair     bool
	priority gpulock.Priority
	client   string
}

// readExecTurns reads exec's flags of fair turns.
func readExecTurns(r FlagReader) (execTurns, error) {
	p, err := gpulock.ParsePriority(r.String(FlagPriority))
	if err != nil {
		return execTurns{}, UsageError(execHelp, "--%s: %s", FlagPriority, LibText(err))
	}
	return execTurns{fair: r.Bool(FlagFair), priority: p, client: r.String(FlagClient)}, nil
}

// options are the lock options of t.
func (t execTurns) options() []gpulock.Option {
	return []gpulock.Option{gpulock.WithFairTurns(t.fair), gpulock.WithPriority(t.priority),
		gpulock.WithClient(t.client)}
}
