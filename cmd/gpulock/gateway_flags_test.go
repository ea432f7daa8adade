package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

func TestGatewayInterruptAndFreeFlagsAndTheirEnvVars(t *testing.T) {
	parse := func(args ...string) (interrupt, free bool) {
		t.Helper()
		cmd := (&App{}).gatewayCommand()
		cmd.Action = func(c *cli.Context) error {
			interrupt, free = c.Bool(flagAllowGlobalInterrupt), c.Bool(flagAllowFree)
			return nil
		}
		app := &cli.App{Commands: []*cli.Command{cmd}, ExitErrHandler: func(*cli.Context, error) {}}
		base := []string{"gpulock", "gateway", "--listen", "127.0.0.1:0", "--profile", "comfyui", "--redis", "redis://127.0.0.1:1/0"}
		require.NoError(t, app.Run(append(base, args...)))
		return interrupt, free
	}
	i, f := parse()
	assert.False(t, i, "off by default")
	assert.False(t, f, "off by default")
	i, f = parse("--allow-global-interrupt", "--allow-free")
	assert.True(t, i)
	assert.True(t, f)
	t.Setenv("GPULOCK_ALLOW_GLOBAL_INTERRUPT", "true")
	t.Setenv("GPULOCK_ALLOW_FREE", "true")
	i, f = parse()
	assert.True(t, i)
	assert.True(t, f)
}
