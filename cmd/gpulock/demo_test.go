package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDemoLockDirAndSIGTERM: the demo's locks go in --lock-dir, and a
// SIGTERM ends it with 128+15.
func TestDemoLockDirAndSIGTERM(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	p := e.start("demo", "--lock-dir", dir, "--jobs", "64", "--step", "50ms")
	eventually(t, "the demo's lock file in --lock-dir", func() bool {
		_, err := os.Stat(filepath.Join(dir, "gpu0.lock"))
		return err == nil
	})
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 128+int(syscall.SIGTERM), p.wait())
	assert.Contains(t, p.stderr.String(), "demo interrupted by SIGTERM")
}
