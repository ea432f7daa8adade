package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Defaults of MemberConfig.
const (
	// DefaultLease is how long a registration lives without a renewal.
	DefaultLease = 10 * time.Second
	// DefaultPoll is how often the member reads its GPU lock's state: a
	// locally freed GPU is offered within about this long.
	DefaultPoll = 20 * time.Millisecond
	// DefaultReserve is how long a matched GPU waits for its job.
	DefaultReserve = 5 * time.Second
)

// reofferEvery is how often a member that stays free offers itself again:
// a sibling's match takes it out of the free set, and when that match
// comes to nothing the GPU is free again without a change of its lock.
const reofferEvery = 200 * time.Millisecond

// MemberConfig is what a Member needs.
type MemberConfig struct {
	// Store is the cluster's Redis.
	Store *Store
	// Node names this machine in the cluster (default: the hostname).
	Node string
	// GPU is the GPU the shim serves.
	GPU int
	// Profile is the shim's profile ("comfyui", "a1111").
	Profile string
	// Advertise is the shim's URL as gateways reach it.
	Advertise string
	// Lease, Poll and Reserve default to DefaultLease, DefaultPoll and
	// DefaultReserve.
	Lease, Poll, Reserve time.Duration
	// Logger receives warnings (default: slog.Default()).
	Logger *slog.Logger
}

// Member is one shim's GPU in the cluster: it registers the GPU with a
// lease, offers it while its lock is free (no holder, nobody in line), takes
// it out of the free set while busy, and confirms jobs dispatched to it.
// While local users wait for the lock and jobs of its profile wait in the
// cluster's line, it waits in the local line too, as ClusterClient, so
// that the two lines take turns (localturn.go). It implements shim.Member.
type Member struct {
	cfg   MemberConfig
	id    string
	token string
	kick  chan struct{} // Released: look at the lock now, not at the next poll
	// holder is the lock holder last published, seen the one Run last
	// read and since when (holder.go); Run's only.
	holder string
	seen   struct {
		text string
		at   time.Time
	}
	// joined: the cluster's A1111 options are applied (memberoptions.go);
	// Register's and Run's, which never run at once.
	joined bool
	turn   localTurn // the cluster's place in the local line (localturn.go)
}

// NewMember checks cfg and returns a Member; it touches nothing yet.
func NewMember(cfg MemberConfig) (*Member, error) {
	if cfg.Store == nil {
		return nil, errors.New("cluster: a member needs a store")
	}
	if cfg.Profile == "" {
		return nil, errors.New("cluster: a member needs a profile")
	}
	u, err := url.Parse(cfg.Advertise)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("cluster: --advertise %q must be the shim's http:// URL as gateways reach it", cfg.Advertise)
	}
	if cfg.Node == "" {
		cfg.Node = hostname()
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Reserve <= 0 {
		cfg.Reserve = DefaultReserve
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	mb := &Member{cfg: cfg, id: GPUID(cfg.Node, cfg.GPU, cfg.Profile), token: hex.EncodeToString(b[:]),
		kick: make(chan struct{}, 1)}
	mb.turn.unpre = make(chan string, 64)
	mb.turn.unstart = mb.unstartJob
	return mb, nil
}

// Released tells Run that the shim has just released the lock, so that a
// free GPU is offered at once rather than at the next poll (which still
// catches releases by other processes). It never blocks.
func (m *Member) Released() {
	select {
	case m.kick <- struct{}{}:
		runtime.Gosched() // let Run offer the GPU now, before the caller's bookkeeping
	default:
	}
}

// ID returns the GPU's id in the cluster.
func (m *Member) ID() string { return m.id }

// Register registers the GPU, bounded by ctx. It fails with ErrTaken when
// another live shim is registered for the same node, GPU and profile.
func (m *Member) Register(ctx context.Context) error {
	if err := m.cfg.Store.Register(ctx, m.id, m.cfg.Profile, m.token, m.cfg.Advertise, m.cfg.Lease); err != nil {
		return err
	}
	return m.markJoining(ctx) // memberoptions.go
}

// Started reports whether job, dispatched to this GPU, may run now that the
// shim holds the GPU lock for it; false means it was cancelled or put back
// in line meanwhile, and must not run here.
//
// A job that a held offer of this member started (Claim's started) counts
// as assigned here until Claim handed it to the shim: a dispatch that
// missed the lock held for it (the offer's answer came late) still runs
// it, once.
//
// dispatch is the dispatch's token (the gateway's HeaderDispatchToken, ""
// for none): Redis records which dispatch started the job, so that asking
// again after a lost answer reports true, and the gateway can put the job
// back in line if the shim refused it all the same.
func (m *Member) Started(ctx context.Context, job, dispatch string) (bool, error) {
	if m.turn.wasHanded(job) {
		return false, nil
	}
	return m.cfg.Store.StartedBy(ctx, job, m.id, m.token, dispatch)
}

// Run renews the registration and offers the GPU while lock is free,
// reading lock's state every Poll, until ctx ends; while local users wait
// (lock's status, and waiting, the shim's own line; nil: none) it takes
// the cluster's turns among them (localturn.go). Then it unregisters
// (bounded by a second). Redis errors are logged and retried at the next
// poll; a registration lost (Redis restarted) is made again.
func (m *Member) Run(ctx context.Context, lock *gpulock.Lock, waiting func() int) {
	t := time.NewTicker(m.cfg.Poll)
	defer t.Stop()
	var (
		last      string // the last offer's outcome, or "busy"
		renewAt   time.Time
		warnedAt  time.Time
		offeredAt time.Time
	)
	join := joinOptions{pending: m.cfg.Profile == "a1111"} // memberoptions.go
	uctx, ustop := context.WithCancel(ctx)
	var unmarking sync.WaitGroup
	unmarking.Go(func() { m.unmark(uctx, m.turn.unpre) })
	defer unmarking.Wait()
	defer ustop()
	warn := func(msg string, err error) {
		if time.Since(warnedAt) > m.cfg.Lease {
			warnedAt = time.Now()
			m.cfg.Logger.Warn(msg, "gpu", m.id, "err", err)
		}
	}
	for {
		kicked := false
		select {
		case <-ctx.Done():
			join.wait()
			m.turn.stop(false)
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			if err := m.cfg.Store.Unregister(uctx, m.id, m.cfg.Profile, m.token); err != nil {
				m.cfg.Logger.Warn("cannot unregister from the cluster; its lease runs out", "gpu", m.id, "err", err)
			}
			cancel()
			return
		case <-t.C:
		case <-m.kick:
			kicked = true
		case err := <-join.done:
			join.finished(ctx, m, err)
		case h := <-m.turn.got: // nil while not waiting
			m.turn.done()
			if h != nil {
				rctx, cancel := context.WithTimeout(ctx, m.cfg.Lease/3)
				m.took(rctx, h)
				cancel()
			}
		}
		rctx, cancel := context.WithTimeout(ctx, m.cfg.Lease/3)
		renew := time.Now().After(renewAt)
		if renew {
			if err := m.Register(rctx); err != nil {
				warn("cannot renew the cluster registration", err)
			} else {
				renewAt = time.Now().Add(m.cfg.Lease / 3)
			}
		}
		m.turn.stop(true) // a lock held for a match nobody claimed goes back
		if kicked && !renew && last != "" && !join.pending && !join.busy() && (waiting == nil || waiting() == 0) && !m.turn.waiting() && !m.turn.holding() {
			// The shim released the lock with nobody of its own in line:
			// take it and offer it at once (localturn.go), without a read
			// of the lock's status first; only while Redis answers (last
			// is "" after an error).
			// A sibling's job is matched below, by an offer without the lock.
			if out, took, err := m.offerHeld(rctx, lock); took && out != OfferSibling {
				offeredAt, last = time.Now(), out
				if err != nil {
					warn("cannot offer the free GPU to the cluster", err)
					last = ""
				}
				if out == OfferUnregistered {
					renewAt = time.Time{}
					join.pending = m.cfg.Profile == "a1111" // it joins again
					m.joined = false
				}
				cancel()
				continue
			}
		}
		st, err := lock.Status()
		join.start(ctx, m)
		local := len(st.Waiters)
		if waiting != nil {
			local += waiting()
		}
		free := err == nil && !st.Held && local == 0 && !join.busy()
		if err == nil && local > 0 && !m.turn.holding() && !join.busy() {
			m.shareTurns(rctx, ctx, lock)
		}
		switch {
		case free && (last != OfferFree || renew || time.Since(offeredAt) > reofferEvery):
			offeredAt = time.Now()
			out, _, err := m.cfg.Store.Offer(rctx, m.id, m.cfg.Profile, m.token, m.cfg.Reserve)
			if err != nil {
				warn("cannot offer the free GPU to the cluster", err)
				last = ""
			} else {
				last = out
			}
			if out == OfferUnregistered {
				renewAt = time.Time{}
				join.pending = m.cfg.Profile == "a1111" // it joins again
				m.joined = false
			}
		case !free && (last != "busy" || renew):
			if err := m.cfg.Store.Busy(rctx, m.id, m.cfg.Profile); err != nil {
				warn("cannot tell the cluster the GPU is busy", err)
				last = ""
			} else {
				last = "busy"
			}
		}
		m.noteHolder(rctx, st, err, renew) // after the offer: not on the hand-over's path
		cancel()
	}
}
