package execcli

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/internal/execcmd"
)

// Flag is the urfave/cli flag of s.
func Flag(s execcmd.FlagSpec) cli.Flag {
	switch s.Kind {
	case execcmd.BoolKind:
		return &cli.BoolFlag{Name: s.Name, Aliases: s.Aliases, Usage: s.Usage, Value: s.Bool,
			DefaultText: s.DefaultText, EnvVars: s.EnvVars}
	case execcmd.IntKind:
		return &cli.IntFlag{Name: s.Name, Aliases: s.Aliases, Usage: s.Usage, Value: s.Int,
			DefaultText: s.DefaultText, EnvVars: s.EnvVars}
	case execcmd.ValueKind:
		return &cli.GenericFlag{Name: s.Name, Aliases: s.Aliases, Usage: s.Usage, Value: s.NewValue(),
			DefaultText: s.DefaultText, EnvVars: s.EnvVars}
	default:
		return &cli.StringFlag{Name: s.Name, Aliases: s.Aliases, Usage: s.Usage, Value: s.String,
			DefaultText: s.DefaultText, EnvVars: s.EnvVars}
	}
}

// Flags are the urfave/cli flags of specs.
func Flags(specs []execcmd.FlagSpec) []cli.Flag {
	flags := make([]cli.Flag, len(specs))
	for i, s := range specs {
		flags[i] = Flag(s)
	}
	return flags
}

// LockDirFlag is --lock-dir (see LockDir).
func LockDirFlag() cli.Flag { return Flag(execcmd.LockDirSpec()) }

// FairFlag is --fair, of exec and the shim.
func FairFlag() cli.Flag { return Flag(execcmd.FairSpec()) }

// PriorityFlag is --priority, of exec and the shim.
func PriorityFlag() cli.Flag { return Flag(execcmd.PrioritySpec()) }

// DurationFlag is a flag of an execcmd.DurationValue with default def;
// read it with execcmd.DurationOf.
func DurationFlag(name, usage string, def time.Duration) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, Usage: usage, Value: execcmd.NewDurationValue(def), EnvVars: execcmd.EnvVar(name)}
}

// WithDefaultText sets what the help shows as f's default.
func WithDefaultText(f *cli.GenericFlag, text string) *cli.GenericFlag {
	f.DefaultText = text
	return f
}

// LockDir returns the lock directory: --lock-dir given after the command,
// else given before it, else $GPULOCK_DIR, else /tmp.
func LockDir(c *cli.Context) string {
	if d, ok := GivenLockDir(c); ok {
		return d
	}
	return execcmd.EnvLockDir()
}

// GivenLockDir returns the --lock-dir given on the command line, if any
// (one equal to $GPULOCK_DIR's value cannot be told from it).
func GivenLockDir(c *cli.Context) (string, bool) {
	fallback := execcmd.EnvLockDir()
	// Each level's flag holds either what its command line said or the
	// fallback; the innermost one that differs was given explicitly.
	for _, cc := range c.Lineage() {
		if cc.Command == nil {
			continue
		}
		if v := cc.String(execcmd.FlagLockDir); v != "" && v != fallback {
			return v, true
		}
	}
	return "", false
}
