// Package execcmd is `gpulock exec`: its flags (FlagSpec, parsed by
// urfave/cli through internal/execcli in the gpulock binary and by
// ParseArgs in gpulock-exec), the wait for the lock, the command run
// holding it, the group guard, and the exit codes and messages that
// gpulock's other commands share. Both the gpulock binary and the small
// gpulock-exec binary are built from it, so it must not import net,
// net/http, crypto/tls, os/user or anything else that pulls in cgo: with
// cgo on, those make a binary dynamically linked, whose start-up every
// exec pays (docs/BENCHMARKS.md, round 5). Nor urfave/cli, whose package
// initialisation every run would pay (round 6). A test checks this
// (cmd/gpulock-exec, TestNoNetNoCgo).
package execcmd
