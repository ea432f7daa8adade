package execcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// RunArgs runs `gpulock exec args...` without urfave/cli, for the
// gpulock-exec binary: the same flags, variables, help, messages and exit
// codes as the gpulock binary's exec (internal/execcli), parsed by
// ParseArgs. It returns the exit code and never calls os.Exit; a panic
// gives ExitSoftware. When ctx ends, a waiting command stops.
func (a *Runner) RunArgs(ctx context.Context, args []string) (code int) {
	defer ExitOnPanic(a.Stderr, &code)
	p, err := ParseExecArgs(args, os.LookupEnv)
	if err != nil {
		return ReportError(a.Stderr, err)
	}
	if p.Help {
		if _, err := io.WriteString(a.Stdout, ExecHelp); err != nil {
			return ReportError(a.Stderr, Exitf(ExitIOErr, "cannot write the help: %v", err))
		}
		return ExitOK
	}
	return ReportError(a.Stderr, a.Exec(ctx, p, p.String(FlagLockDir), p.Args()))
}

// ParseExecArgs parses exec's command line args (those after "exec") with
// ParseArgs, and returns a usage error (*ExitError) with the message that
// the gpulock binary gives.
func ParseExecArgs(args []string, getenv func(string) (string, bool)) (*ParsedArgs, error) {
	// The gpulock binary reads --lock-dir's variable twice: for the app
	// (whose error says 'gpulock --help') and then for exec.
	if _, err := ParseArgs([]FlagSpec{LockDirSpec()}, nil, getenv); err != nil {
		return nil, UsageError("gpulock --help", "%s", FlagErrorText(err))
	}
	p, err := ParseArgs(append(ExecFlagSpecs(), LockDirSpec()), args, getenv)
	if err != nil {
		return nil, UsageError(execHelp, "%s", FlagErrorText(err))
	}
	// urfave/cli takes an argument after --help as a command to show the
	// help of; exec is gpulock exec's app's only one.
	if p.Help && len(p.args) > 0 && p.args[0] != "" && p.args[0] != "exec" {
		return nil, UsageError("gpulock --help", "No help topic for '%s'", p.args[0])
	}
	return p, nil
}

// ExitOnPanic, deferred by a command line's run, turns a panic into an
// internal error on stderr and the exit code ExitSoftware in *code.
func ExitOnPanic(stderr io.Writer, code *int) {
	if r := recover(); r != nil {
		fmt.Fprintf(stderr, "gpulock: internal error: %v\n", r)
		*code = ExitSoftware
	}
}

// ReportError prints err's message on stderr as one line after "gpulock: "
// and returns its exit code: ExitOK for nil, an *ExitError's code, else
// ExitUsage (urfave/cli's own errors, such as "No help topic for 'x'").
func ReportError(stderr io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		fmt.Fprintf(stderr, "gpulock: %s (see 'gpulock --help')\n", oneLine(err.Error()))
		return ExitUsage
	}
	if msg := ee.Error(); msg != "" {
		fmt.Fprintf(stderr, "gpulock: %s\n", oneLine(msg))
	}
	return ee.code
}

// oneLine keeps a message to one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.ReplaceAll(s, "\n", "; ")
}
