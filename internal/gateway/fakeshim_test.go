package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/stretchr/testify/require"
)

// fakeShim is an in-process stand-in for an A1111 shim that is a cluster
// member, for the scale benchmarks: it registers, runs a dispatched job by
// holding its simulated GPU for the job's steps (taking it as the shim's
// TryAcquire does, and confirming with Started), and offers the GPU the
// moment the job ends, as the shim's release hook does. It has no lock
// file and no backend, so that the cost left is the cluster's own (Redis,
// gateways), at hundreds of GPUs on two cores.
type fakeShim struct {
	id, url string
	token   string
	store   *cluster.Store

	mu   sync.Mutex
	busy bool
	runs [][2]time.Time // start, end of each job run
	// loseStarts is how many dispatches still answer 409 after their start
	// ran in Redis, as a shim does when the start's answer is lost.
	loseStarts int
}

// fakeFleet is a set of fake shims and the one goroutine that renews their
// registrations and re-offers the free ones, as each Member's Run does.
type fakeFleet struct {
	shims  []*fakeShim
	lease  time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// fakeReserve is how long a GPU matched to a job waits for it.
const fakeReserve = cluster.DefaultReserve

// newFakeFleet starts one fake shim per id (node/gpu/a1111), each on its own
// loopback listener, registered in store with lease.
func newFakeFleet(t testing.TB, store *cluster.Store, ids []string, lease time.Duration) *fakeFleet {
	t.Helper()
	f := &fakeFleet{lease: lease}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for i, id := range ids {
		s := &fakeShim{id: id, token: fmt.Sprint("tok", i), store: store}
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		s.url = srv.URL
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		require.NoError(t, store.Register(rctx, s.id, "a1111", s.token, s.url, lease))
		rcancel()
		f.shims = append(f.shims, s)
	}
	for _, s := range f.shims {
		s.offer(ctx)
	}
	f.wg.Go(func() { f.keep(ctx) })
	t.Cleanup(f.stop)
	return f
}

// stop ends the fleet's goroutine.
func (f *fakeFleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// keep renews every registration each third of the lease and re-offers the
// free GPUs every 200 ms (the Member's reofferEvery), until ctx ends.
func (f *fakeFleet) keep(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	renewAt := time.Now().Add(f.lease / 3)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		renew := time.Now().After(renewAt)
		if renew {
			renewAt = time.Now().Add(f.lease / 3)
		}
		for _, s := range f.shims {
			if renew {
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				_ = s.store.Register(rctx, s.id, "a1111", s.token, s.url, f.lease)
				cancel()
			}
			s.mu.Lock()
			free := !s.busy
			s.mu.Unlock()
			if free {
				s.offer(ctx)
			}
		}
	}
}

// offer offers the GPU to the cluster's line.
func (s *fakeShim) offer(ctx context.Context) {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _, _ = s.store.Offer(octx, s.id, "a1111", s.token, fakeReserve)
}

func (s *fakeShim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	job := r.Header.Get(HeaderDispatch)
	var body struct {
		Steps int `json:"steps"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	if s.busy || job == "" {
		s.mu.Unlock()
		w.Header().Set(HeaderRequeue, "1")
		w.WriteHeader(http.StatusConflict)
		return
	}
	s.busy = true
	s.mu.Unlock()
	ok, err := s.store.StartedBy(r.Context(), job, s.id, s.token, r.Header.Get(HeaderDispatchToken))
	s.mu.Lock()
	if ok && err == nil && s.loseStarts > 0 {
		s.loseStarts--
		ok, err = false, context.DeadlineExceeded
	}
	s.mu.Unlock()
	if err != nil || !ok {
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
		w.Header().Set(HeaderRequeue, "1")
		w.WriteHeader(http.StatusConflict)
		s.offer(r.Context()) // the shim offers the GPU again as it lets the lock go
		return
	}
	start := time.Now()
	time.Sleep(time.Duration(body.Steps) * stepDuration) // the simulated GPU's work, not a synchronisation
	end := time.Now()
	s.mu.Lock()
	s.runs = append(s.runs, [2]time.Time{start, end})
	s.busy = false
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"images":[],"info":"{}"}`))
	s.offer(r.Context()) // the shim releases, then offers, once the answer is through
}

// allRuns returns every fake shim's runs, and clears them.
func (f *fakeFleet) allRuns() [][][2]time.Time {
	out := make([][][2]time.Time, len(f.shims))
	for i, s := range f.shims {
		s.mu.Lock()
		out[i] = s.runs
		s.runs = nil
		s.mu.Unlock()
	}
	return out
}
