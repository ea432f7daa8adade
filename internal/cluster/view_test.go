package cluster

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gpuByID(t *testing.T, v View, id string) GPUView {
	t.Helper()
	for _, g := range v.GPUs {
		if g.ID == id {
			return g
		}
	}
	t.Fatalf("no GPU %s in %+v", id, v.GPUs)
	return GPUView{}
}

func TestViewShowsStatesJobsAndPositionsByClient(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	for _, g := range []string{"a/0/a1111", "b/0/a1111", "c/0/a1111"} {
		register(t, s, g, "tok")
	}
	// a runs a job of alice, b is reserved for bob's, c is held locally.
	out, _, err := s.Offer(ctx, "a/0/a1111", "a1111", "tok", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferFree, out)
	m, err := s.Enqueue(ctx, "a1111", "run1", Turn{Client: "alice"}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, "a/0/a1111", m.GPU)
	ok, err := s.Started(ctx, "run1", "a/0/a1111")
	require.NoError(t, err)
	require.True(t, ok)
	_, _, err = s.Offer(ctx, "b/0/a1111", "a1111", "tok", reserve)
	require.NoError(t, err)
	m, err = s.Enqueue(ctx, "a1111", "res1", Turn{Client: "bob"}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, "b/0/a1111", m.GPU)
	since := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	require.NoError(t, s.SetHolder(ctx, "c/0/a1111", &HolderView{Service: "exec", PID: 42, Since: since}, time.Minute))
	// Four wait: two of carol's, one of dave's (high), one of carol's.
	for _, j := range []struct {
		id, client string
		p          gpulock.Priority
	}{{"w1", "carol", 0}, {"w2", "dave", gpulock.PriorityHigh}, {"w3", "carol", 0}} {
		m, err := s.Enqueue(ctx, "a1111", j.id, Turn{Client: j.client, Priority: j.p, ArrivalOrder: true}, 0, reserve)
		require.NoError(t, err)
		require.Equal(t, StateWaiting, m.State)
	}

	v, err := s.View(ctx)
	require.NoError(t, err)
	a := gpuByID(t, v, "a/0/a1111")
	assert.Equal(t, GPURunning, a.State)
	assert.Equal(t, "run1", a.Job)
	assert.Equal(t, "alice", a.JobClient)
	require.NotNil(t, a.Since)
	assert.WithinDuration(t, time.Now(), *a.Since, 10*time.Second, "the start is Redis's clock")
	assert.Positive(t, a.LeaseSeconds)
	b := gpuByID(t, v, "b/0/a1111")
	assert.Equal(t, GPUReserved, b.State)
	assert.Equal(t, "res1", b.Job)
	assert.Equal(t, "bob", b.JobClient)
	c := gpuByID(t, v, "c/0/a1111")
	assert.Equal(t, GPUBusy, c.State)
	require.NotNil(t, c.Holder)
	assert.Equal(t, "exec", c.Holder.Service)
	assert.Equal(t, 42, c.Holder.PID)
	require.NotNil(t, c.Since)
	assert.True(t, since.Equal(*c.Since), "since is the holder's: %v", c.Since)

	assert.EqualValues(t, 3, v.LineLength)
	require.Len(t, v.Line, 3)
	assert.Equal(t, []string{"w2", "w1", "w3"}, []string{v.Line[0].ID, v.Line[1].ID, v.Line[2].ID}, "high first")
	assert.Equal(t, []int{1, 2, 3}, []int{v.Line[0].Position, v.Line[1].Position, v.Line[2].Position})
	assert.Equal(t, "dave", v.Line[0].Client)
	assert.Equal(t, "high", v.Line[0].Priority)
	assert.Equal(t, "normal", v.Line[1].Priority)

	v, err = s.ViewClient(ctx, "carol")
	require.NoError(t, err)
	assert.Equal(t, "carol", v.Client)
	assert.EqualValues(t, 3, v.LineLength, "the length is the whole line's")
	require.Len(t, v.Line, 2)
	assert.Equal(t, "w1", v.Line[0].ID)
	assert.Equal(t, 2, v.Line[0].Position, "the place in the whole line")
	assert.Equal(t, 3, v.Line[1].Position)

	pos, length, err := s.Position(ctx, "w3")
	require.NoError(t, err)
	assert.Equal(t, 3, pos)
	assert.EqualValues(t, 3, length)
	pos, _, err = s.Position(ctx, "run1")
	require.NoError(t, err)
	assert.Zero(t, pos, "a running job has no place in line")
}

func TestPinnedJobWaitsForItsGPUOnly(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "a/0/a1111", "tok")
	register(t, s, "b/0/a1111", "tok")
	_, err := s.EnqueuePinned(ctx, "gone/0/a1111", "p0", Turn{}, reserve)
	require.ErrorIs(t, err, ErrNoMachine, "a pin to a GPU not registered")

	m, err := s.EnqueuePinned(ctx, "b/0/a1111", "pb", Turn{Client: "admin"}, reserve)
	require.NoError(t, err)
	require.Equal(t, StateWaiting, m.State, "b is not free yet")
	m, err = s.Enqueue(ctx, "a1111", "any", Turn{}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, StateWaiting, m.State)
	v, err := s.View(ctx)
	require.NoError(t, err)
	require.Len(t, v.Line, 2)
	assert.Equal(t, "b/0/a1111", v.Line[0].Pin)

	out, job, err := s.Offer(ctx, "a/0/a1111", "a1111", "tok", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out)
	assert.Equal(t, "any", job, "a skips the job pinned to b, though it is older")
	out, job, err = s.Offer(ctx, "b/0/a1111", "a1111", "tok", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out)
	assert.Equal(t, "pb", job)

	// A pinned job arriving while its GPU is free takes it, not another.
	register(t, s, "c/0/a1111", "tok")
	register(t, s, "d/0/a1111", "tok")
	for _, g := range []string{"c/0/a1111", "d/0/a1111"} {
		out, _, err := s.Offer(ctx, g, "a1111", "tok", reserve)
		require.NoError(t, err)
		require.Equal(t, OfferFree, out)
	}
	m, err = s.EnqueuePinned(ctx, "d/0/a1111", "pd", Turn{}, reserve)
	require.NoError(t, err)
	assert.Equal(t, StateAssigned, m.State)
	assert.Equal(t, "d/0/a1111", m.GPU, "c was free longer, but the pin is d")
}

func TestWantedOptionsMerge(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	b, err := s.WantedOptions(ctx)
	require.NoError(t, err)
	assert.Nil(t, b)
	require.NoError(t, s.SetWantedOptions(ctx, map[string]json.RawMessage{"sd_model_checkpoint": json.RawMessage(`"a"`), "sd_vae": json.RawMessage(`"v"`)}))
	require.NoError(t, s.SetWantedOptions(ctx, map[string]json.RawMessage{"sd_model_checkpoint": json.RawMessage(`"b"`)}))
	b, err = s.WantedOptions(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"sd_model_checkpoint":"b","sd_vae":"v"}`, string(b))
}

func TestJoiningMemberTakesNoJobThroughItsSibling(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/comfyui", "tok")
	register(t, s, "n/0/a1111", "tok")
	require.NoError(t, s.Client().Set(ctx, keyJoining("n/0/a1111"), "1", time.Minute).Err())
	m, err := s.Enqueue(ctx, "a1111", "job", Turn{}, 0, reserve)
	require.NoError(t, err)
	require.Equal(t, StateWaiting, m.State)
	out, _, err := s.Offer(ctx, "n/0/comfyui", "comfyui", "tok", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferFree, out, "the A1111 shim of this GPU still applies the cluster's options")
	require.NoError(t, s.Client().Del(ctx, keyJoining("n/0/a1111")).Err())
	out, job, err := s.Offer(ctx, "n/0/comfyui", "comfyui", "tok", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out)
	assert.Equal(t, "job", job)
}

func TestViewShowsTheComfyUIPromptAGPURuns(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "c/0/comfyui", "tok")
	register(t, s, "d/0/comfyui", "tok")
	for _, p := range []string{"p-waiting", "p-running"} {
		_, err := s.AddPrompt(ctx, p, "job-"+p, "gw", []byte(`{"prompt":{}}`))
		require.NoError(t, err)
	}
	require.NoError(t, s.PromptDispatched(ctx, "p-running", "c/0/comfyui", "http://127.0.0.1:1"))
	v, err := s.View(ctx)
	require.NoError(t, err)
	c := gpuByID(t, v, "c/0/comfyui")
	assert.Equal(t, GPURunning, c.State)
	assert.Equal(t, "p-running", c.Job, "the prompt its shim took")
	assert.Equal(t, GPUIdle, gpuByID(t, v, "d/0/comfyui").State)
}
