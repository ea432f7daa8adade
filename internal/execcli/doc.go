// Package execcli is the gpulock binary's urfave/cli command line around
// internal/execcmd: the app that every gpulock command runs in (NewApp,
// Run), `gpulock exec` as a urfave/cli command, and urfave/cli flags made
// from execcmd's flag specs. The gpulock-exec binary does not use it: it
// parses the same specs with execcmd.ParseArgs, so that it starts without
// urfave/cli's package initialisation (its man page generator alone is a
// quarter of gpulock-exec's start-up work; docs/BENCHMARKS.md, round 6).
package execcli
