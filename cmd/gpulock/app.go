package main

import (
	"context"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/internal/execcli"
	"github.com/gpulock/gpulock/internal/execcmd"
)

// App is the gpulock command line: a urfave/cli app whose Run returns the
// exit code instead of exiting.
type App struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// exitAfterRun says that the process exits when Run returns (main
	// sets it), so that exec need not undo its signal registrations.
	exitAfterRun bool
}

// NewApp returns the gpulock command line reading stdin and writing stdout
// and stderr. Commands run by `gpulock exec` get the same three streams.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *App {
	return &App{stdin: stdin, stdout: stdout, stderr: stderr}
}

// build makes the urfave/cli app for args. When args name `exec` first,
// it has only that command: exec's start-up is what a wrapper of many
// short commands pays each time, and the other commands' flags are
// dozens of values to build and look through (docs/BENCHMARKS.md, round 4).
func (a *App) build(args []string) *cli.App {
	if len(args) > 1 && args[1] == "exec" {
		return execcli.NewApp(a.stdin, a.stdout, a.stderr, []*cli.Command{a.execCommand()})
	}
	return execcli.NewApp(a.stdin, a.stdout, a.stderr, a.commands())
}

// execCommand is `gpulock exec` (internal/execcmd), with the wait for a
// dead shim's backend of internal/shim (deadholder.go).
func (a *App) execCommand() *cli.Command {
	r := &execcmd.Runner{Stdin: a.stdin, Stdout: a.stdout, Stderr: a.stderr,
		ExitAfterRun: a.exitAfterRun, WaitDeadHolder: waitDeadHolder}
	return execcli.ExecCommand(r)
}

// commands lists gpulock's commands, one file each. To add a command,
// write (a *App) fooCommand() *cli.Command in foo.go and add it here.
// Each command gets --lock-dir added by execcli.NewApp (read it with
// lockDir) and a usage error handler unless it sets its own; its Action
// returns nil, or an *exitError for any other exit code (see
// internal/execcmd/exitcodes.go).
//
// Keep `exec` light: a command's heavy dependencies (metrics, websockets,
// fake backends) belong in their own packages, with no work at package
// initialisation, since every gpulock run links and initialises them.
func (a *App) commands() []*cli.Command {
	return []*cli.Command{
		a.execCommand(),   // internal/execcmd
		a.statusCommand(), // status.go
		a.shimCommand(),   // shim.go
		a.demoCommand(),   // demo.go
		a.fakeCommand(),   // fake.go, hidden: fake backends for tests and the demo
		a.gatewayCommand(),
	}
}

// Run runs the command line args (args[0] is the program name) and returns
// the exit code. It never calls os.Exit.
func (a *App) Run(args []string) int {
	return a.RunContext(context.Background(), args)
}

// RunContext is Run with a context whose end stops a waiting command.
func (a *App) RunContext(ctx context.Context, args []string) int {
	return execcli.Run(ctx, a.build(args), args, a.stderr)
}
