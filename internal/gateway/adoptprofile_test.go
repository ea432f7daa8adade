package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An A1111 gateway keeps out of ComfyUI prompts: adopted there, a prompt
// would be followed among A1111 machines and end as failed while it runs.
func TestAnA1111GatewayDoesNotAdoptPrompts(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	m := e.machines[0]
	release := holdLock(t, m)
	defer release()
	waitFor(t, "the GPU busy in Redis", func() bool { return e.freeCount(t, "a1111") == 0 })
	ctx := t.Context()
	// A dead gateway left a prompt and a held request; the A1111 gateway
	// takes the held request out of the line in the same round in which it
	// would adopt the prompt.
	const id = "0d6f6c1e-0000-4000-8000-000000000002"
	_, err := e.store.AddPrompt(ctx, id, "orphan-prompt-job", "dead-gateway", []byte(`{"prompt":{}}`))
	require.NoError(t, err)
	_, err = e.store.Enqueue(ctx, "a1111", "orphan", cluster.Turn{}, 0, time.Second)
	require.NoError(t, err)
	require.NoError(t, e.store.TrackHeld(ctx, "orphan", "dead-gateway"))
	waitFor(t, "the held request out of the line", func() bool {
		n, _ := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
		return n == 0
	})
	p, found, err := e.store.LookupPrompt(ctx, id)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, "dead-gateway", p.Owner, "left for a ComfyUI gateway to adopt")
	assert.Equal(t, cluster.PromptWaiting, p.State)
}
