package execcli

import (
	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/internal/execcmd"
)

// ExecCommand is `gpulock exec` run by r, for an app made with NewApp.
func ExecCommand(r *execcmd.Runner) *cli.Command {
	return &cli.Command{
		Name:            "exec",
		Usage:           execcmd.ExecUsage,
		UsageText:       execcmd.ExecUsageText,
		Description:     execcmd.ExecDescription,
		HideHelpCommand: true,
		Flags:           Flags(execcmd.ExecFlagSpecs()),
		Action: func(c *cli.Context) error {
			return r.Exec(c.Context, c, LockDir(c), c.Args().Slice())
		},
	}
}
