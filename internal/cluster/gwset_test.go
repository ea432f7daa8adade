package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Adoption looks at the prompts only when a gateway that owned some is
// gone: one whose lease ended, or one that never renewed one.
func TestGoneGatewaysAreTheOwnersWithoutALease(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	require.NoError(t, s.RenewGateway(ctx, "me", time.Minute))
	require.NoError(t, s.RenewGateway(ctx, "other", time.Minute))
	gone, err := s.GoneGateways(ctx, "me")
	require.NoError(t, err)
	assert.Empty(t, gone, "every gateway has its lease")

	require.NoError(t, s.RenewGateway(ctx, "short", 50*time.Millisecond))
	_, err = s.AddPrompt(ctx, "p1", "j1", "never-renewed", []byte(`{}`))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		gone, err = s.GoneGateways(ctx, "me")
		require.NoError(t, err)
		slices.Sort(gone)
		return slices.Equal(gone, []string{"never-renewed", "short"})
	}, 5*time.Second, 10*time.Millisecond, "the lease of short runs out")

	require.NoError(t, s.ForgetGateways(ctx, gone))
	gone, err = s.GoneGateways(ctx, "me")
	require.NoError(t, err)
	assert.Empty(t, gone, "forgotten once adopted")
	require.NoError(t, s.RenewGateway(ctx, "short", 50*time.Millisecond))
	require.Eventually(t, func() bool {
		gone, err = s.GoneGateways(ctx, "me")
		require.NoError(t, err)
		return slices.Equal(gone, []string{"short"})
	}, 5*time.Second, 10*time.Millisecond, "back with a renewal, gone again when it lapses")
}
