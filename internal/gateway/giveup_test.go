package gateway

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/redistest"
)

// TestAHeldRequestGivenUpLeavesNoJobAHeldOfferStarted: a held request
// gave up while Redis was down (its client got the 503), and Redis came
// back with its job still in line; a GPU's held offer matched and started
// it before the gateway's clean-up ran. The clean-up takes the job out all
// the same: nobody will dispatch it. Before, it went back to assigned once
// the member's lock went back unclaimed, reserved for nobody, and stayed
// in Redis (seen in the chaos test).
func TestAHeldRequestGivenUpLeavesNoJobAHeldOfferStarted(t *testing.T) {
	r := redistest.Start(t)
	st := newStore(t, r)
	ctx := context.Background()
	const gpu = "m1/0/a1111"
	require.NoError(t, st.Register(ctx, gpu, "a1111", "tok", "http://127.0.0.1:1", testLease))
	g, err := New(Config{Profile: "a1111", Store: st, Lease: testLease, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(g.Close)

	const job = "given-up"
	_, err = st.Enqueue(ctx, "a1111", job, cluster.Turn{}, 0, cluster.DefaultReserve)
	require.NoError(t, err)
	out, matched, started, err := st.OfferHeld(ctx, gpu, "a1111", "tok", cluster.DefaultReserve)
	require.NoError(t, err)
	require.Equal(t, cluster.OfferAssigned, out)
	require.Equal(t, job, matched)
	require.True(t, started)

	g.forgetLater(job, false)
	waitFor(t, "the given-up job out of Redis", func() bool {
		_, found, err := st.Job(ctx, job)
		return err == nil && !found
	})
	require.NoError(t, st.Unstart(ctx, job, gpu, "tok", cluster.DefaultReserve)) // the member's lock goes back unclaimed
	_, found, err := st.Job(ctx, job)
	require.NoError(t, err)
	require.False(t, found, "not put back to assigned")
}
