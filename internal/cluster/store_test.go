package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const reserve = 5 * time.Second

func newTestStore(t *testing.T) *Store {
	t.Helper()
	r := redistest.Start(t)
	rdb, err := Dial(r.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return NewStore(rdb)
}

func register(t *testing.T, s *Store, gpu, token string) {
	t.Helper()
	profile := gpu[strings.LastIndexByte(gpu, '/')+1:]
	require.NoError(t, s.Register(context.Background(), gpu, profile, token, "http://127.0.0.1:1/"+gpu, time.Minute))
}

func TestSecondLiveRegistrationIsRefused(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/a1111", "first")
	err := s.Register(ctx, "n/0/a1111", "a1111", "second", "http://127.0.0.1:2", time.Minute)
	require.ErrorIs(t, err, ErrTaken)
	require.NoError(t, s.Register(ctx, "n/0/a1111", "a1111", "first", "http://127.0.0.1:1", time.Minute), "renewal by the owner")
	require.NoError(t, s.Unregister(ctx, "n/0/a1111", "a1111", "first"))
	require.NoError(t, s.Register(ctx, "n/0/a1111", "a1111", "second", "http://127.0.0.1:2", time.Minute), "free once unregistered")
}

func TestExpiredRegistrationFreesTheGPUAndItsJobsGetNoMachine(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	require.NoError(t, s.Register(ctx, "n/0/a1111", "a1111", "t", "http://127.0.0.1:1", 50*time.Millisecond))
	m, err := s.Enqueue(ctx, "a1111", "j0", Turn{}, 0, reserve)
	require.NoError(t, err)
	assert.Equal(t, StateWaiting, m.State, "no offer yet: the job waits")
	n := 0
	require.Eventually(t, func() bool {
		n++
		_, err := s.Enqueue(ctx, "a1111", fmt.Sprint("j", n), Turn{}, 0, reserve)
		return errors.Is(err, ErrNoMachine)
	}, 5*time.Second, 10*time.Millisecond, "the lease runs out")
}

func TestFreedGPUTakesTheOldestJobAndArrivalTakesTheLongestFreeGPU(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "na/0/a1111", "ta")
	register(t, s, "nb/0/a1111", "tb")
	for _, id := range []string{"j1", "j2", "j3"} {
		m, err := s.Enqueue(ctx, "a1111", id, Turn{}, 0, reserve)
		require.NoError(t, err)
		assert.Equal(t, StateWaiting, m.State)
	}
	out, job, err := s.Offer(ctx, "nb/0/a1111", "a1111", "tb", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferAssigned, out)
	assert.Equal(t, "j1", job, "the oldest waiting job")
	out, _, err = s.Offer(ctx, "nb/0/a1111", "a1111", "tb", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferReserved, out, "a matched GPU is not offered twice")

	// j1 was refused by b (busy after all): it goes back before j2.
	m, found, err := s.Requeue(ctx, "j1", "nb/0/a1111", "", reserve, 0)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, StateWaiting, m.State)
	out, job, err = s.Offer(ctx, "na/0/a1111", "a1111", "ta", reserve)
	require.NoError(t, err)
	assert.Equal(t, "j1", job, "back in its place by arrival: %s", out)

	ok, err := s.Started(ctx, "j1", "nb/0/a1111")
	require.NoError(t, err)
	assert.False(t, ok, "a job assigned to a cannot start on b")
	ok, err = s.Started(ctx, "j1", "na/0/a1111")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.Cancel(ctx, "j1")
	require.NoError(t, err)
	assert.False(t, ok, "a running job is not cancelled")

	// Drain the line, then arrivals take the GPU free longest.
	for _, id := range []string{"j2", "j3"} {
		ok, err := s.Cancel(ctx, id)
		require.NoError(t, err)
		assert.True(t, ok)
	}
	out, _, err = s.Offer(ctx, "nb/0/a1111", "a1111", "tb", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferFree, out, "b's reservation ended with the requeue")
	require.NoError(t, s.Done(ctx, "j1"))
	out, _, err = s.Offer(ctx, "na/0/a1111", "a1111", "ta", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferFree, out)
	m, err = s.Enqueue(ctx, "a1111", "j4", Turn{}, 0, reserve)
	require.NoError(t, err)
	assert.Equal(t, Match{State: StateAssigned, GPU: "nb/0/a1111", URL: "http://127.0.0.1:1/nb/0/a1111", N: 1}, m, "b has been free longest")
}

func TestOfferWithAnotherTokenIsUnregistered(t *testing.T) {
	s := newTestStore(t)
	register(t, s, "na/0/a1111", "ta")
	out, _, err := s.Offer(context.Background(), "na/0/a1111", "a1111", "stale", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferUnregistered, out)
}

func TestOneLineForBothProfilesInArrivalOrder(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	register(t, s, "n/0/a1111", "ta")
	register(t, s, "n/0/comfyui", "tc")
	for _, j := range []struct{ id, profile string }{{"c1", "comfyui"}, {"a1", "a1111"}, {"c2", "comfyui"}} {
		_, err := s.Enqueue(ctx, j.profile, j.id, Turn{}, 0, reserve)
		require.NoError(t, err)
	}
	// The a1111 shim of the GPU frees it: the oldest job is ComfyUI's, and
	// goes to its sibling on the same GPU.
	out, job, err := s.Offer(ctx, "n/0/a1111", "a1111", "ta", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferAssigned, out)
	assert.Equal(t, "c1", job)
	m, found, err := s.Job(ctx, "c1")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, "n/0/comfyui", m.GPU)
	out, _, err = s.Offer(ctx, "n/0/comfyui", "comfyui", "tc", reserve)
	require.NoError(t, err)
	assert.Equal(t, OfferReserved, out, "one physical GPU, one job")
	ok, err := s.Started(ctx, "c1", "n/0/comfyui")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.Done(ctx, "c1"))
	out, job, err = s.Offer(ctx, "n/0/comfyui", "comfyui", "tc", reserve)
	require.NoError(t, err)
	require.Equal(t, OfferAssigned, out)
	assert.Equal(t, "a1", job, "next by arrival, though the offer came from the ComfyUI shim")
}
