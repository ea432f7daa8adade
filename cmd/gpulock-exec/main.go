// Command gpulock-exec is `gpulock exec` alone: the same flags, help,
// environment variables, exit codes and behaviour, built from the same code
// (internal/execcmd), in a small statically linked binary that starts in
// less time. For wrappers that run many short GPU commands, each of which
// pays the start-up:
//
//	go install github.com/gpulock/gpulock/cmd/gpulock-exec@latest
//	gpulock-exec --gpu 0 -- python job.py    # as gpulock exec --gpu 0 -- python job.py
//
// gpulock's other commands need net/http, TLS and Redis, which make its
// binary dynamically linked (cgo) and four times the size, and slower to
// start (docs/BENCHMARKS.md, round 5). gpulock-exec links none of them,
// nor urfave/cli, whose package initialisation (its man page generator)
// every run would pay: it parses exec's flags with execcmd.ParseArgs,
// which a test holds to urfave/cli's behaviour (round 6). It asks a dead
// shim's backend over a loopback socket of its own; an https backend,
// which it cannot ask, fails closed with exit 69 (gpulock exec can ask).
package main

import (
	"context"
	"os"

	"github.com/gpulock/gpulock/internal/execcmd"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == execcmd.GuardArg {
		os.Exit(execcmd.RunGuard(os.Args[2:])) // see internal/execcmd/guard.go
	}
	os.Exit(run(os.Args[1:]))
}

// run runs `gpulock exec args...` and returns its exit code.
func run(args []string) int {
	r := &execcmd.Runner{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ExitAfterRun: true, WaitDeadHolder: execcmd.WaitDeadBackend}
	return r.RunArgs(context.Background(), args)
}
