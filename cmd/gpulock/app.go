package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
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
	cmds := a.commands()
	if len(args) > 1 && args[1] == "exec" {
		cmds = []*cli.Command{a.execCommand()}
	}
	app := &cli.App{
		Name:            "gpulock",
		Usage:           "share GPUs fairly between programs, one holder per GPU",
		UsageText:       "gpulock [--lock-dir DIR] COMMAND [flags] [args...]",
		HideVersion:     true,
		HideHelpCommand: true,
		Reader:          a.stdin,
		Writer:          a.stdout,
		ErrWriter:       a.stderr,
		Flags:           []cli.Flag{lockDirFlag()},
		Commands:        cmds,
		// Commands return *exitError; Run turns it into the exit code.
		// Without this urfave/cli would call os.Exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Action:         rootAction,
	}
	for _, cmd := range app.Commands {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = onUsageError
		}
		cmd.Flags = append(cmd.Flags, lockDirFlag())
	}
	return app
}

// commands lists gpulock's commands, one file each. To add a command,
// write (a *App) fooCommand() *cli.Command in foo.go and add it here.
// Each command gets --lock-dir added by build (read it with lockDir) and
// onUsageError unless it sets its own; its Action returns nil, or an
// *exitError for any other exit code (see exitcodes.go).
//
// Keep `exec` light: a command's heavy dependencies (metrics, websockets,
// fake backends) belong in their own packages, with no work at package
// initialisation, since every gpulock run links and initialises them.
func (a *App) commands() []*cli.Command {
	return []*cli.Command{
		a.execCommand(),   // exec.go
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
func (a *App) RunContext(ctx context.Context, args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(a.stderr, "gpulock: internal error: %v\n", r)
			code = exitSoftware
		}
	}()
	err := a.build(args).RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ee):
		if msg := ee.Error(); msg != "" {
			fmt.Fprintf(a.stderr, "gpulock: %s\n", oneLine(msg))
		}
		return ee.code
	case errors.As(err, &ec):
		// urfave/cli's own errors, such as "No help topic for 'x'".
		fmt.Fprintf(a.stderr, "gpulock: %s (see 'gpulock --help')\n", oneLine(err.Error()))
		return exitUsage
	default:
		fmt.Fprintf(a.stderr, "gpulock: %s (see 'gpulock --help')\n", oneLine(err.Error()))
		return exitUsage
	}
}

// onUsageError turns a flag parsing error into a usage exit with a hint.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	hint := "gpulock --help"
	if isSubcommand && c.Command != nil && c.Command.Name != "" {
		hint = "gpulock " + c.Command.Name + " --help"
	}
	return usageError(hint, "%s", flagErrorText(err)) // usage.go
}

// rootAction runs when no command matched.
func rootAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("gpulock --help", "unknown command %q", c.Args().First())
	}
	return usageError("gpulock --help", "no command given")
}

// oneLine keeps a message to one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.ReplaceAll(s, "\n", "; ")
}
