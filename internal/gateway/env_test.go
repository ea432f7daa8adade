package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/fakea1111"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Timing of the tests' cluster.
const (
	stepDuration = 10 * time.Millisecond
	testLease    = time.Second
	waitBound    = 20 * time.Second
)

// machine is one simulated machine of the cluster: one GPU (its own lock
// dir and simulated GPU), a fake backend and a shim per profile, each shim
// a cluster member.
type machine struct {
	name  string
	dir   string
	gpu   *simgpu.GPU
	a1111 *fakea1111.Server
	comfy *fakecomfy.Server
	shims map[string]*shim.Shim
	front map[string]*httptest.Server
}

// clusterEnv is a Redis, machines and one gateway per profile.
type clusterEnv struct {
	redis    *redistest.Server
	store    *cluster.Store
	machines []*machine
	gateways map[string]*httptest.Server
	tracer   *tracer
	// comfyConfig, when set, changes each machine's fake ComfyUI's config.
	comfyConfig func(*fakecomfy.Config)
}

func quietLogger() *slog.Logger {
	if os.Getenv("GPULOCK_TEST_LOG") != "" {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newStore(t testing.TB, r *redistest.Server) *cluster.Store {
	t.Helper()
	rdb, err := cluster.Dial(r.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return cluster.NewStore(rdb)
}

// newCluster starts n machines serving profiles and a gateway per profile.
func newCluster(t testing.TB, n int, profiles []string, gw func(*Config)) *clusterEnv {
	t.Helper()
	return newTracedCluster(t, n, profiles, gw, nil)
}

// newTracedCluster is newCluster with the backends' A1111 jobs traced.
func newTracedCluster(t testing.TB, n int, profiles []string, gw func(*Config), tr *tracer) *clusterEnv {
	t.Helper()
	e := &clusterEnv{redis: redistest.Start(t), gateways: map[string]*httptest.Server{}, tracer: tr}
	e.store = newStore(t, e.redis)
	for i := range n {
		e.machines = append(e.machines, e.startMachine(t, "m"+string(rune('1'+i)), profiles))
	}
	for _, p := range profiles {
		cfg := Config{Profile: p, Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()}
		if gw != nil {
			gw(&cfg)
		}
		g, err := New(cfg)
		require.NoError(t, err)
		g.Start()
		srv := httptest.NewServer(g)
		t.Cleanup(func() { srv.Close(); g.Close() })
		e.gateways[p] = srv
	}
	return e
}

func (e *clusterEnv) startMachine(t testing.TB, name string, profiles []string) *machine {
	t.Helper()
	m := &machine{name: name, dir: t.TempDir(), shims: map[string]*shim.Shim{}, front: map[string]*httptest.Server{}}
	var err error
	m.gpu, err = simgpu.Open(m.dir, 0, simgpu.Options{})
	require.NoError(t, err)
	for _, p := range profiles {
		var backend *httptest.Server
		switch p {
		case "a1111":
			m.a1111, err = fakea1111.New(fakea1111.Config{GPU: m.gpu, StepDuration: stepDuration, DefaultSteps: 4})
			require.NoError(t, err)
			backend = httptest.NewServer(e.tracer.wrap(name, m.a1111))
			t.Cleanup(func() { _ = m.a1111.Close() })
		case "comfyui":
			cc := fakecomfy.Config{GPU: m.gpu, StepDuration: stepDuration}
			if e.comfyConfig != nil {
				e.comfyConfig(&cc)
			}
			m.comfy, err = fakecomfy.New(cc)
			require.NoError(t, err)
			backend = httptest.NewServer(m.comfy)
			t.Cleanup(func() { _ = m.comfy.Close() })
		}
		t.Cleanup(backend.Close)
		m.startShim(t, e, p, backend.URL)
	}
	return m
}

// startShim starts the machine's shim for profile as a cluster member.
func (m *machine) startShim(t testing.TB, e *clusterEnv, profile, upstream string) {
	t.Helper()
	m.startShimWith(t, e, profile, upstream, nil)
}

// startShimWith is startShim with the shim's listener wrapped by wrap (if
// not nil).
func (m *machine) startShimWith(t testing.TB, e *clusterEnv, profile, upstream string, wrap func(net.Listener) net.Listener) {
	t.Helper()
	prof, err := shim.LookupProfile(profile)
	require.NoError(t, err)
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	front := httptest.NewUnstartedServer(nil)
	member, err := cluster.NewMember(cluster.MemberConfig{Store: newStore(t, e.redis), Node: m.name, GPU: 0,
		Profile: profile, Advertise: "http://" + front.Listener.Addr().String(), Lease: testLease, Logger: quietLogger()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, member.Register(ctx))
	s, err := shim.New(shim.Config{Upstream: u, GPU: 0, LockDir: m.dir, Profile: prof, WatchInterval: 50 * time.Millisecond,
		Member: member, Logger: quietLogger()})
	require.NoError(t, err)
	front.Config.Handler = s
	if wrap != nil {
		front.Listener = wrap(front.Listener)
	}
	front.Start()
	s.Start()
	t.Cleanup(func() {
		front.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	m.shims[profile], m.front[profile] = s, front
}

// waitFor polls cond until it holds, failing the test after waitBound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling external state (Redis); bounded by the deadline
	}
}

// freeCount reads the number of free GPUs of profile in Redis.
func (e *clusterEnv) freeCount(t testing.TB, profile string) int64 {
	t.Helper()
	n, err := e.store.FreeCount(context.Background(), profile)
	if err != nil && err != redis.Nil {
		return -1
	}
	return n
}

func httptestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

// tracer records when each A1111 job ran at its backend, per machine.
type tracer struct {
	mu   sync.Mutex
	runs map[string][][2]time.Time
	// jobs are the same runs with the client each was for, by start.
	jobs []tracedJob
}

// tracedJob is one A1111 job that ran at a backend.
type tracedJob struct {
	client     string
	start, end time.Time
}

func (tr *tracer) wrap(machine string, h http.Handler) http.Handler {
	if tr == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		if r.Method == http.MethodPost && r.URL.Path == "/sdapi/v1/txt2img" {
			tr.mu.Lock()
			end := time.Now()
			tr.runs[machine] = append(tr.runs[machine], [2]time.Time{start, end})
			tr.jobs = append(tr.jobs, tracedJob{client: r.Header.Get(shim.HeaderClient), start: start, end: end})
			tr.mu.Unlock()
		}
	})
}
