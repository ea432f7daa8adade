package shim

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeMember confirms the jobs in ok and records the ones asked about.
type fakeMember struct {
	mu       sync.Mutex
	ok       map[string]bool
	asked    []string
	tokens   []string // the dispatch token of each ask
	released int
	claims   map[string]*gpulock.Handle // locks taken for jobs in the cluster's turn
	pre      map[string]bool            // of those, the jobs the offer started
}

func (m *fakeMember) Released() {
	m.mu.Lock()
	m.released++
	m.mu.Unlock()
}

func (m *fakeMember) Run(ctx context.Context, _ *gpulock.Lock, _ func() int) { <-ctx.Done() }

func (m *fakeMember) Claim(job string) (*gpulock.Handle, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.claims[job]
	delete(m.claims, job)
	return h, h != nil && m.pre[job]
}

func (m *fakeMember) Started(_ context.Context, job, dispatch string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked = append(m.asked, job)
	m.tokens = append(m.tokens, dispatch)
	return m.ok[job], nil
}

func postDispatched(t *testing.T, url, job string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set(HeaderDispatch, job)
	req.Header.Set(HeaderDispatchToken, "gw."+job)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestDispatchedRequestRunsOnlyOnAFreeGPUAndAConfirmedJob(t *testing.T) {
	backend, forwarded := countingBackend(t)
	member := &fakeMember{ok: map[string]bool{"j1": true}}
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.Member = member
	})

	release := holdGPU(t, s)
	resp := postDispatched(t, front.URL+"/generate", "j1")
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "busy GPU: refused, not queued")
	assert.Equal(t, "1", resp.Header.Get(HeaderRequeue))
	assert.Zero(t, s.Waiting())
	release()

	resp = postDispatched(t, front.URL+"/generate", "j2")
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "a job the cluster no longer assigns here")
	assert.Zero(t, forwarded.Load(), "nothing was forwarded")

	resp = postDispatched(t, front.URL+"/generate", "j1")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), forwarded.Load())
	member.mu.Lock()
	assert.Equal(t, []string{"j2", "j1"}, member.asked, "asked only once the lock was held")
	assert.Equal(t, []string{"gw.j2", "gw.j1"}, member.tokens, "each ask names its dispatch")
	member.mu.Unlock()
	waitFor(t, "the releases told to the member: j2's refused lock and j1's job", func() bool {
		member.mu.Lock()
		defer member.mu.Unlock()
		return member.released == 2
	})
	h, err := s.Lock().TryAcquire()
	require.NoError(t, err, "the lock was released after the job")
	require.NoError(t, h.Release())
}

// A job matched in the cluster's turn runs on the lock its member took for
// it in the local line; another dispatched job still finds the GPU busy.
func TestDispatchedRequestRunsOnTheLockItsMemberTookForIt(t *testing.T) {
	backend, forwarded := countingBackend(t)
	member := &fakeMember{ok: map[string]bool{"j1": true, "j2": true}}
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.Member = member
	})
	h, err := s.Lock().TryAcquire() // the member's turn in the local line
	require.NoError(t, err)
	member.mu.Lock()
	member.claims = map[string]*gpulock.Handle{"j1": h}
	member.mu.Unlock()

	resp := postDispatched(t, front.URL+"/generate", "j2")
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "the lock is held for j1")
	resp = postDispatched(t, front.URL+"/generate", "j1")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), forwarded.Load(), "only j1 ran")
	waitFor(t, "j1's release told to the member", func() bool {
		member.mu.Lock()
		defer member.mu.Unlock()
		return member.released == 1
	})
	h, err = s.Lock().TryAcquire()
	require.NoError(t, err, "j1's job released the lock its member took")
	require.NoError(t, h.Release())
}

// A job its member's offer started with the match (Claim's started) runs
// on the lock taken for it without asking Started again.
func TestDispatchedRequestStartedWithItsMatchSkipsStarted(t *testing.T) {
	backend, forwarded := countingBackend(t)
	member := &fakeMember{ok: map[string]bool{}} // Started would refuse it
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
		c.Member = member
	})
	h, err := s.Lock().TryAcquire() // the member's held offer
	require.NoError(t, err)
	member.mu.Lock()
	member.claims = map[string]*gpulock.Handle{"j1": h}
	member.pre = map[string]bool{"j1": true}
	member.mu.Unlock()

	resp := postDispatched(t, front.URL+"/generate", "j1")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), forwarded.Load())
	member.mu.Lock()
	assert.Empty(t, member.asked, "no Started round trip")
	member.mu.Unlock()
	resp = postDispatched(t, front.URL+"/generate", "j1")
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "the claim went with the first dispatch: Started refuses the second")
	assert.Equal(t, int64(1), forwarded.Load(), "ran once")
}
