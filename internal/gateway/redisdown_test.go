package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hungRedis is a loopback listener that accepts connections and never
// answers: a Redis that is cut off or hung.
func hungRedis(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "redis://" + ln.Addr().String() + "/0"
}

func TestHungRedisAnswersGPUJobsWithin2sWith503NamingRedis(t *testing.T) {
	rdb, err := cluster.Dial(hungRedis(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	for _, c := range []struct{ profile, path, body string }{
		{"a1111", "/sdapi/v1/txt2img", `{"steps":1}`},
		{"comfyui", "/prompt", promptBody(1, 0)},
	} {
		g, err := New(Config{Profile: c.profile, Store: cluster.NewStore(rdb), Logger: quietLogger()})
		require.NoError(t, err)
		srv := httptestServer(t, g)
		start := time.Now()
		resp, err := http.Post(srv+c.path, "application/json", strings.NewReader(c.body))
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		assert.Contains(t, string(b), "Redis", c.profile)
		assert.Less(t, time.Since(start), 2*time.Second, c.profile)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, c.profile)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"), c.profile)
		g.Close()
	}
}

func TestHeldRequestGetsAClearErrorWhenRedisGoesDownAndTheGatewayResumes(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	gw := e.gateways["a1111"].URL
	m := e.machines[0]
	release := holdLock(t, m)
	res := postAsync(t, gw+"/sdapi/v1/txt2img", `{"steps":1}`)
	waitFor(t, "the job in line", func() bool {
		n, _ := e.store.Client().ZCard(t.Context(), "gpulock:line").Result()
		return n == 1
	})
	e.redis.Stop()
	start := time.Now()
	r := await(t, res)
	assert.Equal(t, http.StatusServiceUnavailable, r.code, r.body)
	assert.Contains(t, r.body, "Redis")
	assert.Less(t, time.Since(start), testLease+3*time.Second, "the held request got its error within about a lease")

	code, _, body := post(t, gw+"/sdapi/v1/txt2img", `{"steps":1}`)
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	assert.Contains(t, body, "Redis")

	e.redis.Restart() // empty
	release()
	waitFor(t, "the shim registered again and free", func() bool { return e.freeCount(t, "a1111") == 1 })
	// The gateway's own Redis client redials on its own time (go-redis
	// backs off after failed dials): wait until the gateway reads Redis.
	waitFor(t, "the gateway to reach Redis again", func() bool {
		resp, err := http.Get(gw + PathStatus)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	code, gpu, body := post(t, gw+"/sdapi/v1/txt2img", `{"steps":1}`)
	assert.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "m1/0/a1111", gpu)
	st, err := m.gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Jobs, "the refused job never ran; the one after Redis came back did")
}
