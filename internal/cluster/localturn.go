package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// ClusterClient is the client name under which a member waits in its GPU
// lock's local line for the cluster's turn: local users and the cluster's
// line then take turns by the fair-turn rules (round robin between the
// clients that wait), so that a busy local client does not starve the
// cluster, nor the cluster the local users.
const ClusterClient = "gpulock-cluster"

// grantTTL is how long a lock taken for the cluster's turn waits for the
// job matched with it before it goes back to the local users.
const grantTTL = time.Second

// heldOfferBound bounds an offer made while the member holds the lock, so
// that a hung Redis keeps local users waiting that long at most (an offer
// that timed out but matched a job sends it back through the shim's 409).
const heldOfferBound = 250 * time.Millisecond

// grant is the GPU lock a member holds for the job matched in the
// cluster's turn, until the shim claims it for that job.
type grant struct {
	job     string
	h       *gpulock.Handle
	until   time.Time
	started bool // the offer started the job (OfferHeld): no Started needed
}

// localTurn is a member's place in its lock's local line for the
// cluster's turn, and the lock it got there.
type localTurn struct {
	mu      sync.Mutex
	granted *grant
	// handed are the jobs started by a held offer and handed to the shim
	// whose pre mark is still in Redis (Member.Started refuses them);
	// unpre takes them to Run's unmarking.
	handed map[string]bool
	unpre  chan string
	// unstart puts a job the held offer started back to assigned when its
	// lock goes back unclaimed (Member.unstartJob).
	unstart  func(job string)
	offering chan struct{} // closed once the offer made with the lock held answered

	cancel context.CancelFunc   // ends the wait; nil when not waiting
	got    chan *gpulock.Handle // the wait's outcome (nil handle: none)
	wg     sync.WaitGroup       // the waiting goroutine
}

// Claim hands the shim the lock its member took in the cluster's turn (or
// at a release) for job, or nil: then the shim takes the lock itself
// (TryAcquire). started says that the offer started the job in Redis with
// its match: the shim runs it without asking Started. The match reaches
// the gateway, and its dispatch the shim, often before the offer's answer
// reaches the member: Claim waits for an offer under way (at most
// grantTTL).
func (m *Member) Claim(job string) (h *gpulock.Handle, started bool) {
	lt := &m.turn
	lt.mu.Lock()
	h, started = lt.claimLocked(job)
	offering := lt.offering
	lt.mu.Unlock()
	if h != nil || offering == nil {
		return h, started
	}
	t := time.NewTimer(grantTTL)
	defer t.Stop()
	select {
	case <-offering:
	case <-t.C:
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.claimLocked(job)
}

// claimLocked takes the lock held for job, if any; a job the offer started
// is handed: Member.Started refuses it from now on.
func (lt *localTurn) claimLocked(job string) (*gpulock.Handle, bool) {
	if lt.granted == nil || lt.granted.job != job {
		return nil, false
	}
	g := lt.granted
	lt.granted = nil
	if g.started {
		if lt.handed == nil {
			lt.handed = map[string]bool{}
		}
		lt.handed[job] = true
		select {
		case lt.unpre <- job: // Run takes the mark off (unmark)
		default: // not running, or behind: the job stays refused here
		}
	}
	return g.h, g.started
}

// unstartJob puts job, started by this member's held offer and never
// handed to the shim, back to assigned to this GPU, as a match without the
// start: its dispatch, if it comes, goes through Started, or the gateway
// puts it back in line. Bounded by heldOfferBound; on an error the job
// stays started here (Started with the token still runs it, once).
func (m *Member) unstartJob(job string) {
	ctx, cancel := context.WithTimeout(context.Background(), heldOfferBound)
	defer cancel()
	if err := m.cfg.Store.Unstart(ctx, job, m.id, m.token, m.cfg.Reserve); err != nil {
		m.cfg.Logger.Warn("cannot put an unclaimed job back to assigned in the cluster", "gpu", m.id, "job", job, "err", err)
	}
}

// wasHanded reports whether job, started by a held offer, went to the shim.
func (lt *localTurn) wasHanded(job string) bool {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.handed[job]
}

// unmark takes the pre marks of the jobs handed to the shim off in Redis
// (so that no Started of them succeeds anywhere), until ctx ends; each
// job is forgotten here once its mark is off.
func (m *Member) unmark(ctx context.Context, jobs <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-jobs:
			uctx, cancel := context.WithTimeout(ctx, m.cfg.Lease/3)
			err := m.cfg.Store.Unpre(uctx, job, m.token)
			cancel()
			if err == nil {
				m.turn.mu.Lock()
				delete(m.turn.handed, job)
				m.turn.mu.Unlock()
			}
		}
	}
}

// offerWith offers the GPU (joining the free set with none, if join) while
// holding h: a job matched gets h, held for it until the shim claims it;
// else h goes back. It reports the offer's outcome.
func (m *Member) offerWith(ctx context.Context, h *gpulock.Handle, join bool) (out string, err error) {
	ctx, cancel := context.WithTimeout(ctx, heldOfferBound)
	defer cancel()
	lt := &m.turn
	done := make(chan struct{})
	lt.mu.Lock()
	lt.offering = done
	lt.mu.Unlock()
	var (
		job     string
		started bool
	)
	if join {
		out, job, started, err = m.cfg.Store.OfferHeld(ctx, m.id, m.cfg.Profile, m.token, m.cfg.Reserve)
	} else {
		out, job, started, err = m.cfg.Store.OfferTurn(ctx, m.id, m.cfg.Profile, m.token, m.cfg.Reserve)
	}
	held := err == nil && out == OfferAssigned
	lt.mu.Lock()
	if held {
		lt.granted = &grant{job: job, h: h, until: time.Now().Add(grantTTL), started: started}
	}
	lt.offering = nil
	close(done)
	lt.mu.Unlock()
	if !held {
		_ = h.Release()
	}
	return out, err
}

// waiting reports whether the member waits in the local line.
func (lt *localTurn) waiting() bool { return lt.cancel != nil }

// wait joins lock's local line as ClusterClient; the lock comes on got.
func (lt *localTurn) wait(ctx context.Context, lock *gpulock.Lock) {
	wctx, cancel := context.WithCancel(ctx)
	lt.cancel = cancel
	lt.got = make(chan *gpulock.Handle, 1)
	got := lt.got
	lt.wg.Go(func() {
		h, err := lock.AcquireTurn(wctx, gpulock.Turn{Client: ClusterClient})
		if err != nil {
			h = nil
		}
		got <- h
	})
}

// stop leaves the local line (releasing a lock granted meanwhile) and
// releases a lock held for a match that nobody claimed; with expired only,
// just a lock held past grantTTL.
func (lt *localTurn) stop(expired bool) {
	if !expired && lt.cancel != nil {
		lt.cancel()
		lt.wg.Wait()
		if h := <-lt.got; h != nil {
			_ = h.Release()
		}
		lt.cancel, lt.got = nil, nil
	}
	lt.mu.Lock()
	g := lt.granted
	if g != nil && (!expired || time.Now().After(g.until)) {
		lt.granted = nil
	} else {
		g = nil
	}
	lt.mu.Unlock()
	if g != nil {
		if g.started && lt.unstart != nil {
			lt.unstart(g.job) // before the lock goes: a late dispatch finds it assigned
		}
		_ = g.h.Release()
	}
}

// done ends a wait whose outcome was taken from got.
func (lt *localTurn) done() {
	lt.wg.Wait()
	lt.cancel()
	lt.cancel, lt.got = nil, nil
}

// holding reports whether a lock taken for the cluster's turn waits for
// its job.
func (lt *localTurn) holding() bool {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.granted != nil
}

// took handles the lock the local line gave the cluster: the first job in
// the cluster's line that the GPU serves gets it (held for it until the
// shim claims it), else it goes back at once.
func (m *Member) took(ctx context.Context, h *gpulock.Handle) {
	_, _ = m.offerWith(ctx, h, false)
}

// shareTurns, while local users wait for lock, keeps the member in the
// local line exactly while jobs of its profile wait in the cluster's line.
// rctx bounds the look at Redis; the wait lasts until run ends at most.
func (m *Member) shareTurns(rctx, run context.Context, lock *gpulock.Lock) {
	n, err := m.cfg.Store.Waiting(rctx, m.cfg.Profile)
	switch {
	case err != nil:
	case n > 0 && !m.turn.waiting():
		m.turn.wait(run, lock)
	case n == 0 && m.turn.waiting():
		m.turn.stop(false)
	}
}

// offerHeld takes lock if it is free and nobody waits for it, and offers
// the GPU while holding it: a job matched gets the lock (Claim), so that
// nobody takes the GPU between the match and the job's dispatch; else it
// goes back at once. took is false when the lock was not free: then the
// caller looks at the lock's status as usual.
func (m *Member) offerHeld(ctx context.Context, lock *gpulock.Lock) (out string, took bool, err error) {
	h, err := lock.TryAcquire()
	if err != nil {
		return "", false, nil
	}
	out, err = m.offerWith(ctx, h, true)
	return out, true, err
}
