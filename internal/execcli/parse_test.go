package execcli

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/internal/execcmd"
)

// parseOutcome is what a parse of exec's command line gave: an error's
// exit code and message, the help, or every flag's value and the
// arguments.
type parseOutcome struct {
	Code   int
	Stderr string
	Help   bool
	Values map[string]string
	Dir    string
	Args   []string
}

// flagValues reads every exec flag from r as text.
func flagValues(r execcmd.FlagReader) map[string]string {
	values := map[string]string{}
	for _, s := range execcmd.ExecFlagSpecs() {
		switch s.Kind {
		case execcmd.BoolKind:
			values[s.Name] = strconv.FormatBool(r.Bool(s.Name))
		case execcmd.IntKind:
			values[s.Name] = strconv.Itoa(r.Int(s.Name))
		case execcmd.ValueKind:
			values[s.Name] = r.Generic(s.Name).(execcmd.FlagValue).String()
		default:
			values[s.Name] = r.String(s.Name)
		}
	}
	return values
}

// parseWithCLI parses `gpulock exec args...` as the gpulock binary does.
func parseWithCLI(args []string) parseOutcome {
	var out parseOutcome
	var stdout, stderr bytes.Buffer
	cmd := ExecCommand(&execcmd.Runner{})
	cmd.Action = func(c *cli.Context) error {
		out.Values, out.Dir, out.Args = flagValues(c), LockDir(c), c.Args().Slice()
		return nil
	}
	app := NewApp(strings.NewReader(""), &stdout, &stderr, []*cli.Command{cmd})
	out.Code = Run(context.Background(), app, append([]string{"gpulock", "exec"}, args...), &stderr)
	out.Stderr = stderr.String()
	out.Help = out.Values == nil && out.Code == execcmd.ExitOK && stdout.Len() > 0
	return normalised(out)
}

// parseWithoutCLI parses it as gpulock-exec does.
func parseWithoutCLI(args []string) parseOutcome {
	var out parseOutcome
	var stderr bytes.Buffer
	p, err := execcmd.ParseExecArgs(args, os.LookupEnv)
	out.Code = execcmd.ReportError(&stderr, err)
	out.Stderr = stderr.String()
	if err == nil {
		out.Help = p.Help
		if !p.Help {
			out.Values, out.Dir, out.Args = flagValues(p), p.String(execcmd.FlagLockDir), p.Args()
		}
	}
	return normalised(out)
}

func normalised(o parseOutcome) parseOutcome {
	if len(o.Args) == 0 {
		o.Args = nil
	}
	return o
}

// parseCases are command lines for both parsers, good and bad.
var parseCases = [][]string{
	{}, {"true"}, {"--", "true"}, {"--", "--help"}, {"-"}, {"x", "--gpu", "1"},
	{"-g", "1", "true"}, {"--gpu=0,2", "x"}, {"-gpu", "any", "x"}, {"--gpu", "-1", "x"},
	{"--gpu"}, {"--gpu", "1", "-g", "2", "x"}, {"--gpu", "1", "--gpu", "2", "x"}, {"--gpu", "0-3", "x"},
	{"--gpu", "zero", "x"}, {"--gpu="}, {"--gpu=", "x"},
	{"--nonblock", "x"}, {"--nonblock=false", "x"}, {"--nonblock=maybe", "x"}, {"--nonblock=", "x"},
	{"--nonblock", "false", "x"}, {"-n", "-E", "3", "x"}, {"-E", "x", "y"},
	{"-E", "99999999999999999999", "x"}, {"-E=0x10", "x"}, {"-E", "-1", "x"}, {"--conflict-exit-code=011", "x"},
	{"--timeout", "5", "x"}, {"--timeout", "5s", "x"}, {"-w", "-5s", "x"}, {"-w=1h30m", "x"}, {"--timeout", "0", "x"},
	{"--bogus", "x"}, {"-bogus=1", "x"}, {"---x"}, {"-=x"}, {"--=x"},
	{"--help"}, {"-h"}, {"-help"}, {"--help=false", "x"}, {"--help=no"}, {"-h", "--help"}, {"--help", "--bogus"},
	{"--name", "", "x"}, {"--name=a=b", "x"}, {"--name"},
	{"--fair=false", "x"}, {"--fair", "x"}, {"--priority", "urgent", "x"}, {"--priority", "high", "x"},
	{"--client", "bob", "x"}, {"--lock-dir", "", "x"}, {"--lock-dir", " ", "x"}, {"--lock-dir", "/tmp/x", "x"},
	{"--quiet"}, {"-q", "--", "--help"}, {"--cuda-env=0", "x"}, {"--cuda-env=T", "x"}, {"--show-command", "x"},
	{"--close", "-o", "x"}, {"-o", "x"}, {"-no", "x"}, {"-qn", "x"}, {"--quiet", "-q", "x"},
}

// TestParseArgsIsUrfaveCLIs: gpulock-exec's parser and the gpulock binary's
// urfave/cli agree on every command line: the same values, the same help,
// the same errors word for word and exit codes.
func TestParseArgsIsUrfaveCLIs(t *testing.T) {
	for _, args := range parseCases {
		require.Equal(t, parseWithCLI(args), parseWithoutCLI(args), "gpulock exec %q", args)
	}
}

// TestParseArgsEnvIsUrfaveCLIs: the same with the flags' environment
// variables set, alone and beside command-line flags.
func TestParseArgsEnvIsUrfaveCLIs(t *testing.T) {
	envs := []map[string]string{
		{"GPULOCK_GPU": "2"}, {"GPULOCK_GPU": ""}, {"GPULOCK_GPU": "-1"}, {"GPULOCK_GPU": "any"},
		{"GPULOCK_TIMEOUT": "5"}, {"GPULOCK_TIMEOUT": "90s"}, {"GPULOCK_TIMEOUT": ""},
		{"GPULOCK_NONBLOCK": ""}, {"GPULOCK_NONBLOCK": "yes"}, {"GPULOCK_NONBLOCK": "1"},
		{"GPULOCK_CONFLICT_EXIT_CODE": "x"}, {"GPULOCK_CONFLICT_EXIT_CODE": "0x20"}, {"GPULOCK_CONFLICT_EXIT_CODE": ""},
		{"GPULOCK_CONFLICT_EXIT_CODE": "99999999999999999999"},
		{"GPULOCK_NAME": ""}, {"GPULOCK_NAME": "svc"}, {"GPULOCK_DIR": "  "}, {"GPULOCK_DIR": ""}, {"GPULOCK_DIR": "/tmp/q"},
		{"GPULOCK_FAIR": "false"}, {"GPULOCK_FAIR": ""}, {"GPULOCK_PRIORITY": "bad"}, {"GPULOCK_PRIORITY": ""},
		{"GPULOCK_QUIET": "true"}, {"GPULOCK_CLIENT": "alice"}, {"GPULOCK_CUDA_ENV": "off"},
		{"GPULOCK_TIMEOUT": "5", "GPULOCK_GPU": "-1"}, {"GPULOCK_HELP": "1"},
	}
	lines := [][]string{{"x"}, {"--help"}, {"--quiet=false", "x"}, {"--lock-dir", "/tmp/y", "x"},
		{"--gpu", "3", "--timeout", "1s", "-E", "9", "x"}, {"--bogus"}, {"--name", "n", "x"}}
	for _, env := range envs {
		t.Run(strings.Join(keys(env), ","), func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			for _, args := range lines {
				require.Equal(t, parseWithCLI(args), parseWithoutCLI(args), "%v gpulock exec %q", env, args)
			}
		})
	}
}

// keys are m's entries as k=v, in order.
func keys(m map[string]string) []string {
	var ks []string
	for k, v := range m {
		ks = append(ks, k+"="+v)
	}
	slices.Sort(ks)
	return ks
}

// FuzzParseArgsIsUrfaveCLIs: the two parsers agree on any command line.
func FuzzParseArgsIsUrfaveCLIs(f *testing.F) {
	for _, args := range parseCases {
		f.Add(strings.Join(args, "\x00"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		require.Equal(t, parseWithCLI(args), parseWithoutCLI(args), "gpulock exec %q", args)
	})
}
