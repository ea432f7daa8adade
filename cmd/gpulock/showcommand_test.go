package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHolderLineKeepsArgumentsPrivate reads the holder line from inside the
// command: only the command's base name is there, unless --show-command.
func TestHolderLineKeepsArgumentsPrivate(t *testing.T) {
	e := newEnv(t)
	lockPath := filepath.Join(e.dir, "gpu0.lock")
	script := `head -n 1 "$1"`
	for _, tc := range []struct {
		name  string
		flags []string
		want  string // the whole command text, or "" for the whole command line
	}{
		{"default", nil, "sh"},
		{"show-command", []string{"--show-command"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"exec", "-q"}, tc.flags...), "--", "/bin/sh", "-c", script, "x", lockPath, "--token=SECRET")
			out, stderr, code := e.run(args...)
			require.Equal(t, 0, code, "stderr: %s", stderr)
			var h struct {
				Service string `json:"service"`
				Command string `json:"command"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &h), "holder line %q", out)
			assert.Equal(t, "sh", h.Service)
			if tc.want != "" {
				assert.Equal(t, tc.want, h.Command)
				assert.NotContains(t, out, "SECRET")
			} else {
				assert.True(t, strings.HasSuffix(h.Command, "--token=SECRET"), "whole line: %q", h.Command)
				assert.Contains(t, h.Command, "/bin/sh -c")
			}
		})
	}
}
