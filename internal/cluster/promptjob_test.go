package cluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPromptFinishedForgetsItsJob: the job of a prompt that finished is
// forgotten with it, even if the gateway that dispatched it never comes
// back to forget it (it died after the history was kept; seen in the chaos
// test as a job left "running" in Redis with its prompt done).
func TestPromptFinishedForgetsItsJob(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	// A job record as a dispatched prompt's (running on a GPU).
	require.NoError(t, s.Client().HSet(ctx, keyJob("j1"), "state", StateRunning, "gpu", "m/0/comfyui").Err())
	require.NoError(t, s.Client().HSet(ctx, keyJob("other"), "state", StateRunning, "gpu", "m/0/comfyui").Err())
	_, err := s.AddPrompt(ctx, "p1", "j1", "gw", []byte(`{}`))
	require.NoError(t, err)
	require.NoError(t, s.PromptDispatched(ctx, "p1", "m/0/comfyui", "http://127.0.0.1:1"))
	_, found, err := s.Job(ctx, "j1")
	require.NoError(t, err)
	require.True(t, found)

	require.NoError(t, s.PromptFinished(ctx, "p1", []byte(`{"status":{"status_str":"success"}}`), "http://127.0.0.1:1", nil))
	_, found, err = s.Job(ctx, "j1")
	require.NoError(t, err)
	assert.False(t, found, "the finished prompt's job is forgotten")
	_, found, err = s.Job(ctx, "other")
	require.NoError(t, err)
	assert.True(t, found, "and no other")
	p, found, err := s.LookupPrompt(ctx, "p1")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, PromptDone, p.State)
}
