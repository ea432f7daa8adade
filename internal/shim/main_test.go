package shim

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gpulock's one kernel waiter may outlive a test while it sits in flock(2).
		goleak.IgnoreTopFunction("github.com/gpulock/gpulock/gpulock.(*queue).run"),
		goleak.IgnoreAnyFunction("golang.org/x/sys/unix.Syscall"),
		// httptest servers' and transports' idle connections close asynchronously.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
