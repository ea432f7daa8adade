// Package deadholdertest sets up, for tests, a lock file as a holder that
// died holding it leaves it: its description, naming its backend, still in
// the file (the library's Handle.Disown leaves it as a SIGKILL does).
package deadholdertest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/gpulock"
)

// Leave takes GPU 0's lock in dir as service, naming the backend profile
// at upstream, and drops it without releasing, as a holder killed by
// SIGKILL would.
func Leave(t testing.TB, dir, service, profile, upstream string) {
	t.Helper()
	l, err := gpulock.New(0, gpulock.WithDir(dir), gpulock.WithService(service), gpulock.WithBackend(profile, upstream))
	require.NoError(t, err)
	h, err := l.TryAcquire()
	require.NoError(t, err)
	require.NoError(t, h.Disown()) // no release: the description stays, as after a SIGKILL
}

// Take takes GPU 0's lock in dir as service, the next holder, and releases
// it when the test ends.
func Take(t testing.TB, dir, service string) (*gpulock.Lock, *gpulock.Handle) {
	t.Helper()
	l, err := gpulock.New(0, gpulock.WithDir(dir), gpulock.WithService(service))
	require.NoError(t, err)
	h, err := l.TryAcquire()
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Release() })
	return l, h
}
