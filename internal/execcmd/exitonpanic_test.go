package execcmd

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestExitOnPanic: a run that panics ends with ExitSoftware and says so on
// stderr, in one line.
func TestExitOnPanic(t *testing.T) {
	var stderr bytes.Buffer
	run := func() (code int) {
		defer ExitOnPanic(&stderr, &code)
		panic("boom")
	}
	assert.Equal(t, ExitSoftware, run())
	assert.Equal(t, "gpulock: internal error: boom\n", stderr.String())
}
