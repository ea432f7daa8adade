package execcmd

import "github.com/gpulock/gpulock/gpulock"

// FlagKind is the kind of value a FlagSpec takes.
type FlagKind int

// The kinds of flag values.
const (
	BoolKind   FlagKind = iota // true or false; --flag alone is true
	StringKind                 // any text
	IntKind                    // a whole number (0x.. and 0.. as Go reads them)
	ValueKind                  // a FlagValue with its own syntax
)

// FlagValue is a flag value that parses its own text (the flag package's
// flag.Value).
type FlagValue interface {
	Set(string) error
	String() string
}

// FlagSpec describes one command-line flag once, for both command lines
// built from this package: internal/execcli turns it into a urfave/cli
// flag (the gpulock binary) and ParseArgs parses it without urfave/cli
// (the gpulock-exec binary, which starts faster without it).
type FlagSpec struct {
	Name    string
	Aliases []string
	Usage   string
	Kind    FlagKind
	// Bool, String and Int are the default of a BoolKind, StringKind or
	// IntKind flag.
	Bool   bool
	String string
	Int    int
	// NewValue makes a ValueKind flag's value, holding its default.
	NewValue func() FlagValue
	// DefaultText is what the help shows as the default, if not the value.
	DefaultText string
	// EnvVars are the environment variables that set the flag when the
	// command line does not.
	EnvVars []string
}

// Names are the flag's name and its aliases.
func (s FlagSpec) Names() []string { return append([]string{s.Name}, s.Aliases...) }

// LockDirSpec is --lock-dir. urfave/cli reads an app's flags only before the
// command name, so every command takes it too.
func LockDirSpec() FlagSpec {
	return FlagSpec{Name: FlagLockDir, Kind: ValueKind,
		Usage:    "directory of the lock files; every program sharing a GPU must use the same one",
		NewValue: func() FlagValue { return &lockDirValue{dir: gpulock.DefaultDir} },
		EnvVars:  []string{gpulock.DirEnv}}
}

// QuietSpec is --quiet.
func QuietSpec() FlagSpec {
	return FlagSpec{Name: FlagQuiet, Aliases: []string{"q"}, Kind: BoolKind,
		Usage: "print nothing of gpulock's own except errors", EnvVars: EnvVar(FlagQuiet)}
}

// FairSpec is --fair, of exec and the shim.
func FairSpec() FlagSpec {
	return FlagSpec{Name: FlagFair, Kind: BoolKind, Bool: true, EnvVars: EnvVar(FlagFair),
		Usage: "take turns round-robin between clients that wait; --fair=false: plain arrival order"}
}

// PrioritySpec is --priority, of exec and the shim.
func PrioritySpec() FlagSpec {
	return FlagSpec{Name: FlagPriority, Kind: StringKind, String: "normal", EnvVars: EnvVar(FlagPriority),
		Usage: "level in line: low, normal or high; a wait rises one level per 30s waited"}
}

// helpSpec is urfave/cli's --help, -h, which ParseArgs parses as it does.
func helpSpec() FlagSpec {
	return FlagSpec{Name: "help", Aliases: []string{"h"}, Kind: BoolKind, Usage: "show help"}
}
