package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestExecWithStreamsThatAreNotFiles: an App given buffers runs the
// command through os/exec, which copies its streams, with the same exit
// codes.
func TestExecWithStreamsThatAreNotFiles(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	a := NewApp(strings.NewReader("from stdin\n"), &out, &errOut)
	code := a.Run([]string{"gpulock", "exec", "--lock-dir", dir, "--quiet", "--", "sh", "-c", `cat; echo "held $GPULOCK_HELD_GPU"; echo oops >&2; exit 3`})
	assert.Equal(t, 3, code, errOut.String())
	assert.Equal(t, "from stdin\nheld 0\n", out.String())
	assert.Equal(t, "oops\n", errOut.String())
}
