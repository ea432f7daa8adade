package execcli

import (
	"context"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/internal/execcmd"
)

// NewApp is gpulock's urfave/cli app with the commands cmds, reading stdin
// and writing stdout and stderr. Each command gets --lock-dir (read it with
// LockDir) and the usage error handler unless it sets its own; its Action
// returns nil, or an *execcmd.ExitError for any other exit code. Run it with Run.
func NewApp(stdin io.Reader, stdout, stderr io.Writer, cmds []*cli.Command) *cli.App {
	app := &cli.App{
		Name:            "gpulock",
		Usage:           "share GPUs fairly between programs, one holder per GPU",
		UsageText:       "gpulock [--lock-dir DIR] COMMAND [flags] [args...]",
		HideVersion:     true,
		HideHelpCommand: true,
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		Flags:           []cli.Flag{LockDirFlag()},
		Commands:        cmds,
		// Commands return *ExitError; Run turns it into the exit code.
		// Without this urfave/cli would call os.Exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Action:         rootAction,
	}
	for _, cmd := range app.Commands {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = onUsageError
		}
		cmd.Flags = append(cmd.Flags, LockDirFlag())
	}
	return app
}

// Run runs app (from NewApp) on the command line args (args[0] is the
// program name) and returns the exit code, printing an error's message on
// stderr as one line after "gpulock: " (execcmd.ReportError). It never
// calls os.Exit; a panic gives ExitSoftware. When ctx ends, a waiting
// command stops.
func Run(ctx context.Context, app *cli.App, args []string, stderr io.Writer) (code int) {
	defer execcmd.ExitOnPanic(stderr, &code)
	return execcmd.ReportError(stderr, app.RunContext(ctx, args))
}

// onUsageError turns a flag parsing error into a usage exit with a hint.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	hint := "gpulock --help"
	if isSubcommand && c.Command != nil && c.Command.Name != "" {
		hint = "gpulock " + c.Command.Name + " --help"
	}
	return execcmd.UsageError(hint, "%s", execcmd.FlagErrorText(err))
}

// rootAction runs when no command matched.
func rootAction(c *cli.Context) error {
	if c.Args().Present() {
		return execcmd.UsageError("gpulock --help", "unknown command %q", c.Args().First())
	}
	return execcmd.UsageError("gpulock --help", "no command given")
}
