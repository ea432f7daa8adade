package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the command-line walkthroughs in testdata/script against
// the built binary: each .txtar file is a short session a user could type.
func TestScripts(t *testing.T) {
	need(t, "flock")
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("..", "..", "testdata", "script"),
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", filepath.Dir(binPath)+string(os.PathListSeparator)+e.Getenv("PATH"))
			e.Setenv("GPULOCK_DIR", e.WorkDir)
			e.Setenv("GPULOCK_GPUS", "2")
			return nil
		},
	})
}
