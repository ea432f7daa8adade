package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestArrivalPrefersAFreeGPUWithItsModelElseTheOneFreeLongest(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	gpus := []string{"n1/0/comfyui", "n2/0/comfyui", "n3/0/comfyui"}
	for _, g := range gpus {
		register(t, s, g, "t")
		out, _, err := s.Offer(ctx, g, "comfyui", "t", reserve)
		require.NoError(t, err)
		require.Equal(t, OfferFree, out)
	}
	require.NoError(t, s.SetLastModel(ctx, "n3/0/comfyui", "sdxl"))

	m, err := s.Enqueue(ctx, "comfyui", "j1", Turn{Model: "sdxl"}, 0, reserve)
	require.NoError(t, err)
	assert.Equal(t, "n3/0/comfyui", m.GPU, "the GPU free last, but with the model")
	m, err = s.Enqueue(ctx, "comfyui", "j2", Turn{Model: "sd15"}, 0, reserve)
	require.NoError(t, err)
	assert.Equal(t, "n1/0/comfyui", m.GPU, "no GPU has it: the one free longest")
	ok, err := s.Started(ctx, "j2", "n1/0/comfyui")
	require.NoError(t, err)
	require.True(t, ok)
	last, err := s.LastModel(ctx, "n1/0/comfyui")
	require.NoError(t, err)
	assert.Equal(t, "sd15", last, "a start records the GPU's model")

	// The GPU with the model is taken: the job does not wait for it.
	m, err = s.Enqueue(ctx, "comfyui", "j3", Turn{Model: "sdxl"}, 0, reserve)
	require.NoError(t, err)
	assert.Equal(t, StateAssigned, m.State)
	assert.Equal(t, "n2/0/comfyui", m.GPU)
}

func TestFrontGoesAheadOfEveryWaitingJob(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/comfyui", "t") // registered, never offered: jobs wait
	for _, id := range []string{"a", "b", "c"} {
		_, err := s.Enqueue(ctx, "comfyui", id, Turn{Client: id, Priority: gpulock.PriorityHigh}, 0, reserve)
		require.NoError(t, err)
	}
	_, err := s.Enqueue(ctx, "comfyui", "f", Turn{Client: "f", Priority: gpulock.PriorityHigh, Front: true}, 0, reserve)
	require.NoError(t, err)
	_, err = s.Enqueue(ctx, "comfyui", "g", Turn{Client: "g", Front: true}, 0, reserve)
	require.NoError(t, err)
	for id, want := range map[string]int64{"g": 1, "f": 2, "a": 3, "b": 4, "c": 5} {
		pos, _, err := s.Position(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, int64(pos), id)
	}
}

func TestMeanJobTimeKeepsTheRecentOnes(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	_, ok, err := s.MeanJobTime(ctx, "comfyui")
	require.NoError(t, err)
	assert.False(t, ok, "none yet")
	for range jobTimesKept {
		require.NoError(t, s.RecordJobTime(ctx, "comfyui", time.Hour))
	}
	for range jobTimesKept {
		require.NoError(t, s.RecordJobTime(ctx, "comfyui", 2*time.Second))
	}
	mean, ok, err := s.MeanJobTime(ctx, "comfyui")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 2*time.Second, mean, "the old ones are dropped")
}
