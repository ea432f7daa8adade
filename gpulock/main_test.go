//go:build unix

package gpulock

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs a child role when the test binary is re-executed as a helper
// process (see child_test.go); otherwise it runs the tests and checks that
// none leaves a goroutine behind. The runner may outlive its waiters while
// it sits in flock(2), as the package documentation says.
func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(runChildRole(role))
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/gpulock/gpulock/gpulock.(*queue).run"),
		goleak.IgnoreAnyFunction("golang.org/x/sys/unix.Syscall"))
}
