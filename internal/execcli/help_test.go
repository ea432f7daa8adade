package execcli

import (
	"bytes"
	"context"
	"flag"
	"go/format"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/gpulock/gpulock/internal/execcmd"
)

var update = flag.Bool("update", false, "rewrite ../execcmd/exechelp.go from urfave/cli's help")

// execHelpFile holds execcmd.ExecHelp.
const execHelpFile = "../execcmd/exechelp.go"

// TestExecHelpIsCurrent: execcmd.ExecHelp, which gpulock-exec prints, is
// the help that urfave/cli writes for the gpulock binary's exec.
func TestExecHelpIsCurrent(t *testing.T) {
	var out bytes.Buffer
	app := NewApp(strings.NewReader(""), &out, io.Discard, []*cli.Command{ExecCommand(&execcmd.Runner{})})
	require.Equal(t, execcmd.ExitOK, Run(context.Background(), app, []string{"gpulock", "exec", "--help"}, io.Discard))
	help := out.String()
	require.Contains(t, help, "--gpu value, -g value")
	if !*update {
		require.Equal(t, help, execcmd.ExecHelp,
			"exec's flags or texts changed: run go test ./internal/execcli -run TestExecHelpIsCurrent -update")
		return
	}
	old, err := os.ReadFile(execHelpFile)
	require.NoError(t, err)
	head, _, ok := strings.Cut(string(old), "const ExecHelp = ")
	require.True(t, ok, "%s lost its const ExecHelp", execHelpFile)
	lit := "`" + help + "`"
	if strings.Contains(help, "`") {
		lit = strconv.Quote(help)
	}
	src, err := format.Source([]byte(head + "const ExecHelp = " + lit + "\n"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(execHelpFile, src, 0o644))
}
