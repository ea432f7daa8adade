package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/shim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

// shimConfigOf parses gpulock shim's flags in args into a shim.Config,
// without starting anything.
func shimConfigFrom(t *testing.T, args ...string) shim.Config {
	t.Helper()
	a := NewApp(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	cmd := a.shimCommand()
	var cfg shim.Config
	cmd.Action = func(c *cli.Context) error {
		var err error
		cfg, err = shimConfig(c)
		return err
	}
	app := &cli.App{Name: "gpulock", Commands: []*cli.Command{cmd}, ExitErrHandler: func(*cli.Context, error) {}}
	base := []string{"gpulock", "shim", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"}
	require.NoError(t, app.Run(append(base, args...)))
	return cfg
}

func TestShimFlagsStatusDetailAndMaxHold(t *testing.T) {
	assert.False(t, shimConfigFrom(t).StatusDetail, "masked for remote callers by default")
	assert.True(t, shimConfigFrom(t, "--status-detail").StatusDetail)
	assert.Zero(t, shimConfigFrom(t).MaxHold, "the profile's default")
	assert.Equal(t, 4*time.Second, shimConfigFrom(t, "--profile", "generic", "--max-hold", "4s").MaxHold)
	assert.Negative(t, shimConfigFrom(t, "--max-hold", "0s").MaxHold, "0 turns it off, even for comfyui")
}

func TestShimHelpShowsOneMaxHoldDefault(t *testing.T) {
	var out bytes.Buffer
	a := NewApp(strings.NewReader(""), &out, &out)
	a.Run([]string{"gpulock", "shim", "--help"})
	var line string
	for l := range strings.SplitSeq(out.String(), "\n") {
		if strings.Contains(l, "--max-hold") {
			line = l
		}
	}
	require.NotEmpty(t, line, out.String())
	assert.Equal(t, 1, strings.Count(line, "default"), line)
	assert.Contains(t, line, "cannot be interrupted")
	assert.Contains(t, out.String(), "--status-detail")
}
