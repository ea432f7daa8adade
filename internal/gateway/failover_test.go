package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// holdLock takes machine m's GPU lock as a local user would; the returned
// func releases it.
func holdLock(t testing.TB, m *machine) func() {
	t.Helper()
	l, err := gpulock.New(0, gpulock.WithDir(m.dir), gpulock.WithService("local-user"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	h, err := l.Acquire(ctx)
	require.NoError(t, err)
	return func() { _ = h.Release() }
}

type result struct {
	code int
	gpu  string
	body string
}

func postAsync(t testing.TB, url, body string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		code, gpu, b := post(t, url, body)
		ch <- result{code, gpu, b}
	}()
	return ch
}

func await(t testing.TB, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitBound):
		t.Fatal("gave up waiting for a job's answer")
		return result{}
	}
}

func TestUnreachableMachineAfterMatchPutsJobBackAndItRunsElsewhere(t *testing.T) {
	e := newCluster(t, 2, []string{"a1111"}, nil)
	a, b := e.machines[0], e.machines[1]
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "a1111") == 2 })
	releaseA := holdLock(t, a)
	waitFor(t, "only b free", func() bool { return e.freeCount(t, "a1111") == 1 })
	// b's shim goes unreachable while its registration still lives (a
	// killed process before its lease runs out, a partition).
	b.front["a1111"].Close()

	res := postAsync(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":2}`)
	waitFor(t, "the job to wait in line after b failed", func() bool {
		n, _ := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
		return n == 1
	})
	releaseA()
	r := await(t, res)
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "m1/0/a1111", r.gpu)
	stB, err := b.gpu.Stats()
	require.NoError(t, err)
	assert.Zero(t, stB.Jobs, "nothing ran on the unreachable machine")
	stA, err := a.gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), stA.Jobs)
}

func TestGPUTakenLocallyAfterOfferSendsJobBackToItsPlace(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	m := e.machines[0]
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "a1111") == 1 })
	// A local user takes the GPU and the gateway matches a job before the
	// member notices: hold the lock and put the GPU back in the free set.
	release := holdLock(t, m)
	waitFor(t, "the GPU busy", func() bool { return e.freeCount(t, "a1111") == 0 })
	require.NoError(t, e.store.Client().ZAdd(context.Background(), "gpulock:free:a1111",
		redisZ(0, "m1/0/a1111")).Err())
	res := postAsync(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":2}`)
	waitFor(t, "the refused job back in line", func() bool {
		n, _ := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
		return n == 1
	})
	release()
	r := await(t, res)
	require.Equal(t, http.StatusOK, r.code, r.body)
	st, err := m.gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Jobs, "the job ran once, after the local user")
}

func TestQueueTimeoutAnswers503AndLeavesTheLine(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, func(c *Config) { c.QueueTimeout = 200 * time.Millisecond })
	m := e.machines[0]
	release := holdLock(t, m)
	defer release()
	code, _, body := post(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":2}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "queue_timeout")
	n, err := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the job left the line")
}

func TestMaxQueueAnswers503AtOnce(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, func(c *Config) { c.MaxQueue = 1 })
	release := holdLock(t, e.machines[0])
	first := postAsync(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":1}`)
	waitFor(t, "one job in line", func() bool {
		n, _ := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
		return n == 1
	})
	code, _, body := post(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":1}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "queue_full")
	release()
	r := await(t, first)
	assert.Equal(t, http.StatusOK, r.code, r.body)
}

func TestRedisRestartDoesNotLoseAWaitingJob(t *testing.T) {
	// The gateway's lease bounds how long its held request waits for Redis
	// to come back and for the shim to register again: a second (testLease)
	// can pass in a restart on a loaded machine (seen once with four race
	// test packages on 2 cores), and then the request rightly gives up.
	e := newCluster(t, 1, []string{"a1111"}, func(c *Config) { c.Lease = 5 * time.Second })
	m := e.machines[0]
	release := holdLock(t, m)
	res := postAsync(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":2}`)
	waitFor(t, "the job in line", func() bool {
		n, _ := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
		return n == 1
	})
	e.redis.Restart() // empty: the line, the job and the registration are gone
	waitFor(t, "the job back in line", func() bool {
		n, _ := e.store.Client().ZCard(context.Background(), "gpulock:line").Result()
		return n == 1
	})
	release()
	r := await(t, res)
	require.Equal(t, http.StatusOK, r.code, r.body)
	st, err := m.gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Jobs)
}

func TestLocallyFreedGPUIsOfferedWithin100ms(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "a1111") == 1 })
	release := holdLock(t, e.machines[0])
	waitFor(t, "the GPU busy in Redis", func() bool { return e.freeCount(t, "a1111") == 0 })
	freed := time.Now()
	release()
	waitFor(t, "the GPU free in Redis", func() bool { return e.freeCount(t, "a1111") == 1 })
	// The member polls every 20 ms; 100 ms is the bound, with room
	// for a loaded machine under -race.
	assert.Less(t, time.Since(freed), 250*time.Millisecond)
}

func TestMachineFailingMidJobAnswers502AndDoesNotRunItAgain(t *testing.T) {
	e := newCluster(t, 2, []string{"a1111"}, nil)
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "a1111") == 2 })
	res := postAsync(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":30}`)
	var ran *machine
	waitFor(t, "the job running", func() bool {
		for _, m := range e.machines {
			if st, err := m.gpu.Stats(); err == nil && len(st.Running) > 0 {
				ran = m
				return true
			}
		}
		return false
	})
	ran.front["a1111"].CloseClientConnections() // the machine drops off mid-job
	r := await(t, res)
	assert.Equal(t, http.StatusBadGateway, r.code, r.body)
	assert.Contains(t, r.body, "machine_failed")
	var jobs int64
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		jobs += st.Jobs
	}
	assert.Equal(t, int64(1), jobs, "the job that started ran once, nowhere else")
}

func TestRedisDownAnswers503(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	e.redis.Stop()
	code, _, body := post(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":1}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "cluster_unreachable")
}

func TestHeldRequestOfAGatewayThatIsGoneLeavesTheLineWithinALease(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	m := e.machines[0]
	release := holdLock(t, m)
	waitFor(t, "the GPU busy in Redis", func() bool { return e.freeCount(t, "a1111") == 0 })
	// A gateway that died (SIGKILL: no lease, nobody waits for the answer)
	// left a held request in line.
	ctx := t.Context()
	_, err := e.store.Enqueue(ctx, "a1111", "orphan", cluster.Turn{}, 0, time.Second)
	require.NoError(t, err)
	require.NoError(t, e.store.TrackHeld(ctx, "orphan", "dead-gateway"))
	start := time.Now()
	waitFor(t, "the orphan out of the line", func() bool {
		n, _ := e.store.Client().ZCard(ctx, "gpulock:line").Result()
		return n == 0
	})
	assert.Less(t, time.Since(start), 2*testLease, "within the gateway's lease")
	release()
	waitFor(t, "the GPU free in Redis", func() bool { return e.freeCount(t, "a1111") == 1 })
	st, err := m.gpu.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Jobs, "the orphan never ran")
	// A live gateway's held request is not touched.
	release = holdLock(t, m)
	res := postAsync(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":1}`)
	waitFor(t, "the job in line", func() bool {
		n, _ := e.store.Client().ZCard(ctx, "gpulock:line").Result()
		return n == 1
	})
	held, err := e.store.Client().HLen(ctx, "gpulock:heldby").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), held)
	release()
	r := await(t, res)
	assert.Equal(t, http.StatusOK, r.code, r.body)
}
