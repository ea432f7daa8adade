package main

import (
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/shim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

// shimConfigOf parses the shim's flags as the command line would.
func shimConfigOf(t *testing.T, args ...string) (shim.Config, error) {
	t.Helper()
	cmd := (&App{}).shimCommand()
	var cfg shim.Config
	var cfgErr error
	cmd.Action = func(c *cli.Context) error { cfg, cfgErr = shimConfig(c); return nil }
	app := &cli.App{Commands: []*cli.Command{cmd}, ExitErrHandler: func(*cli.Context, error) {}}
	base := []string{"gpulock", "shim", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:8188"}
	if err := app.Run(append(base, args...)); err != nil {
		return cfg, err // a value the flag's parser refuses
	}
	return cfg, cfgErr
}

func TestShimBodyAndConnectionFlags(t *testing.T) {
	cfg, err := shimConfigOf(t)
	require.NoError(t, err)
	assert.Equal(t, shim.DefaultBodyTimeout, cfg.BodyTimeout)
	assert.Equal(t, shim.DefaultHeaderTimeout, cfg.HeaderTimeout)
	assert.Equal(t, shim.DefaultKeepAliveTimeout, cfg.KeepAliveTimeout)
	assert.Zero(t, cfg.MaxBuffered, "the shim's default")

	cfg, err = shimConfigOf(t, "--max-buffered", "1048576", "--body-timeout", "5s", "--header-timeout", "2s", "--keepalive-timeout", "90s")
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20), cfg.MaxBuffered)
	assert.Equal(t, 5*time.Second, cfg.BodyTimeout)
	assert.Equal(t, 2*time.Second, cfg.HeaderTimeout)
	assert.Equal(t, 90*time.Second, cfg.KeepAliveTimeout)

	cfg, err = shimConfigOf(t, "--body-timeout", "0")
	require.NoError(t, err)
	assert.Negative(t, cfg.BodyTimeout, "0 turns the body timeout off")

	_, err = shimConfigOf(t, "--max-buffered", "-1")
	assert.ErrorContains(t, err, "cannot be negative")
	_, err = shimConfigOf(t, "--body-timeout", "-1s")
	assert.ErrorContains(t, err, "cannot be negative")
}
