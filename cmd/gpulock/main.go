// Command gpulock runs commands while holding a GPU lock and shows who holds
// which GPU. See doc.go for the commands and the exit codes.
package main

import (
	"os"

	"github.com/gpulock/gpulock/internal/execcmd"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == execcmd.GuardArg {
		os.Exit(execcmd.RunGuard(os.Args[2:])) // see internal/execcmd/guard.go
	}
	app := NewApp(os.Stdin, os.Stdout, os.Stderr)
	app.exitAfterRun = true
	os.Exit(app.Run(os.Args))
}
