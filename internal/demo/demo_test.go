package demo

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/gpulock/gpulock/gpulock.(*queue).run"),
		goleak.IgnoreAnyFunction("golang.org/x/sys/unix.Syscall"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func TestDemoShowsTheDifference(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{GPUs: 2, JobsPerService: 6, Clients: 3, Step: 5 * time.Millisecond, Out: &out, Dir: t.TempDir()})
	require.NoError(t, err, out.String())
	t.Log("\n" + out.String())

	for _, svc := range []string{serviceComfy, serviceA1111} {
		assert.Equal(t, 12, rep.With.Done[svc], "every %s job completes with gpulock", svc)
		assert.Zero(t, rep.With.Failed[svc])
	}
	assert.Zero(t, rep.With.Overlaps)
	assert.Zero(t, rep.With.OOMs)
	// Without gpulock jobs collide: they overlap, or the one that starts
	// second runs out of memory (which of the two depends on who starts
	// first, so neither alone is certain).
	assert.Positive(t, rep.Without.Overlaps+rep.Without.OOMs, "without gpulock jobs collide")
	assert.Contains(t, out.String(), "with gpulock")
	assert.Contains(t, out.String(), "overlaps (two jobs on one GPU)")
}
