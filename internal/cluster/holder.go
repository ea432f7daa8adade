package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Each member publishes who holds its GPU's local lock (a dispatched job,
// a local client, `gpulock exec`, the other service) under
// gpulock:holder:<member>, with the registration's lease, for View: Redis
// alone knows only the jobs it matched.

func keyHolder(member string) string { return prefix + "holder:" + member }

// HolderView is who holds a GPU's local lock, as its shim last saw it.
type HolderView struct {
	// Service is the name the holder gave itself ("comfyui", "exec"...).
	Service string `json:"service"`
	// PID is the holding process on its machine.
	PID int `json:"pid,omitempty"`
	// Host is the holder's host name.
	Host string `json:"host,omitempty"`
	// Command is the holder's command line, when it told it.
	Command string `json:"command,omitempty"`
	// Since is when it took the lock.
	Since time.Time `json:"since"`
}

// holderOf describes st's holder; nil when the lock is free. A lock held
// with no description (util-linux flock(1)) is "?".
func holderOf(st gpulock.Status) *HolderView {
	if !st.Held {
		return nil
	}
	if st.Holder == nil {
		return &HolderView{Service: "?"}
	}
	h := st.Holder
	return &HolderView{Service: h.Service, PID: h.PID, Host: h.Host, Command: h.Command, Since: h.Since}
}

// SetHolder records member's lock holder for ttl; nil forgets it.
func (s *Store) SetHolder(ctx context.Context, member string, h *HolderView, ttl time.Duration) error {
	if h == nil {
		if err := s.rdb.Del(ctx, keyHolder(member)).Err(); err != nil {
			return redisErr(err)
		}
		return nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("cluster: cannot encode a lock holder: %w", err)
	}
	if err := s.rdb.Set(ctx, keyHolder(member), b, ttl).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// holderSettle is how long a lock's holder (or its freedom) must last
// before a member publishes it: a job of the cluster's own shows as running
// (from its hash), so a quick hand-over costs no writes.
const holderSettle = 200 * time.Millisecond

// noteHolder publishes the lock's holder once it has lasted holderSettle,
// and again with every renewal (its key lives one lease). Errors are the
// next call's to retry.
func (m *Member) noteHolder(ctx context.Context, st gpulock.Status, err error, renew bool) {
	if err != nil {
		return
	}
	h := holderOf(st)
	var text string
	if h != nil {
		b, _ := json.Marshal(h)
		text = string(b)
	}
	now := time.Now()
	if text != m.seen.text {
		m.seen.text, m.seen.at = text, now
	}
	settled := now.Sub(m.seen.at) >= holderSettle
	if !settled || (text == m.holder && !(renew && text != "")) {
		return
	}
	if m.cfg.Store.SetHolder(ctx, m.id, h, m.cfg.Lease) == nil {
		m.holder = text
	} else {
		m.holder = "?" // unknown: write again next time
	}
}
