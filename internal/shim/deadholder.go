package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/deadwait"
)

// A shim killed while its backend runs a job (SIGKILL, an OOM kill) frees
// the lock, but the backend, started on its own, goes on with the job. So
// the shim names its backend in its holder description
// (gpulock.WithBackend), which a death leaves in the lock file, and every
// next holder (a shim, gpulock exec) that finds one first waits, holding the
// lock, until that backend reports idle: ComfyUI's /queue empty, A1111's
// job_count 0. During the wait it keeps the dead holder's description in
// the lock file (gpulock.Handle.KeepLeftover), so that the wait survives its
// own death or an abandoned wait. gpulock keeps it from the moment the lock
// is taken, until the holder saw that backend idle: a holder that never
// waits (a start-up check, a cluster offer nobody took) passes it on
// instead of blanking it.
//
// Idle counts only when two answers in a row, deadwait.Poll apart, say so,
// the last at least deadwait.Settle (1 s) after the wait began: a job that
// the dead holder had just forwarded may not show yet (a request that
// A1111 has read but not begun, a prompt ComfyUI still validates).
//
// The description is untrusted input (anyone who may write the lock file
// may write it): only a known profile and an http(s) URL on a loopback
// address (or one the caller allows, its own upstream) are asked, with
// bounded requests, answers and time.

// Defaults and bounds of the wait for a dead holder's backend.
const (
	// DefaultDeadHolderTimeout bounds the wait for a dead holder's backend
	// to be idle: after it, the new holder goes ahead (and logs a warning).
	DefaultDeadHolderTimeout = DefaultIdleTimeout
	// deadHolderAsk bounds each request to the backend.
	deadHolderAsk = 2 * time.Second
	// maxDeadHolderAnswer bounds what is read of an answer.
	maxDeadHolderAnswer = 1 << 20
	// maxUpstreamLen bounds the upstream URL taken from a description.
	maxUpstreamLen = 2048
)

// DeadHolderOptions configures WaitDeadHolder.
type DeadHolderOptions struct {
	// Timeout bounds the wait (default DefaultDeadHolderTimeout).
	Timeout time.Duration
	// Logger gets a line when the wait starts and one when it ends
	// (default slog.Default()).
	Logger *slog.Logger
	// Allow lists upstreams besides loopback ones that may be asked (a
	// shim's own upstream): scheme and host must match.
	Allow []*url.URL
	// Once does not wait for a busy backend: a busy answer gives
	// ErrDeadHolderBusy (for gpulock exec --nonblock). An idle one is still
	// asked again to be sure, each deadwait.Poll, until deadwait.Settle.
	Once bool
}

// ErrDeadHolderBusy says that the backend of a holder that died is busy,
// when WaitDeadHolder was told not to wait. The handle still shows the dead
// holder's description: release it, and the next holder waits in turn.
var ErrDeadHolderBusy = deadwait.ErrBusy

// WaitDeadHolder is called right after h took the lock. If the previous
// holder ended without releasing and named a backend, it waits until that
// backend reports idle (or stops listening) in two answers in a row,
// bounded by the timeout, and returns how long it waited; h then shows its
// own description. At the timeout it logs a warning and returns nil: the
// caller goes ahead. If ctx ends first, it returns an error wrapping
// ctx.Err(), and h still shows the dead holder's description: the caller
// releases h, and the next holder waits in turn. The rule is
// internal/deadwait's, which gpulock-exec follows too.
func WaitDeadHolder(ctx context.Context, h *gpulock.Handle, o DeadHolderOptions) (time.Duration, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultDeadHolderTimeout
	}
	check := func(b gpulock.Backend) (deadwait.Backend, error) { return checkDeadBackend(b, o.Allow) }
	return deadwait.Wait(ctx, h, check, deadwait.Options{Timeout: o.Timeout, Logger: o.Logger, Once: o.Once})
}

// deadBackend is a dead holder's backend, checked.
type deadBackend struct {
	profile string
	base    *url.URL
	client  *http.Client
}

// checkDeadBackend checks a backend taken from a lock file: a profile that
// can say whether it is busy, and an http(s) URL on a loopback address or
// one of allow.
func checkDeadBackend(b gpulock.Backend, allow []*url.URL) (*deadBackend, error) {
	if b.Profile != "comfyui" && b.Profile != "a1111" {
		return nil, fmt.Errorf("shim: profile %q cannot say whether it is busy", b.Profile)
	}
	if len(b.Upstream) > maxUpstreamLen {
		return nil, fmt.Errorf("shim: the upstream URL is over %d bytes", maxUpstreamLen)
	}
	u, err := url.Parse(b.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("shim: upstream %q is not a plain http(s) URL", b.Upstream)
	}
	if !loopbackHost(u.Hostname()) && !allowed(u, allow) {
		return nil, fmt.Errorf("shim: upstream %s is not on a loopback address", u.Redacted())
	}
	return &deadBackend{profile: b.Profile, base: u, client: deadHolderClient()}, nil
}

// loopbackHost reports whether host is localhost or a loopback IP address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// allowed reports whether u has the scheme and host of one of allow.
func allowed(u *url.URL, allow []*url.URL) bool {
	for _, a := range allow {
		if a != nil && strings.EqualFold(a.Scheme, u.Scheme) && strings.EqualFold(a.Host, u.Host) {
			return true
		}
	}
	return false
}

// deadHolderClient asks a dead holder's backend: no proxy, no redirects,
// each request bounded.
func deadHolderClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       (&net.Dialer{Timeout: deadHolderAsk}).DialContext,
			DisableKeepAlives: true, // nothing to close afterwards
		},
		Timeout:       deadHolderAsk,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Profile is the backend's kind, for logs.
func (b *deadBackend) Profile() string { return b.profile }

// Where is the backend's URL without credentials, for logs.
func (b *deadBackend) Where() string { return b.base.Redacted() }

// Busy asks the backend whether it runs or queues a job. A refused
// connection gives errBackendDown (deadwait.ErrDown): nothing runs there
// any more.
func (b *deadBackend) Busy(ctx context.Context) (bool, error) {
	switch b.profile {
	case "comfyui":
		var q struct {
			Running []json.RawMessage `json:"queue_running"`
			Pending []json.RawMessage `json:"queue_pending"`
		}
		if err := b.get(ctx, "/queue", "", &q); err != nil {
			return false, err
		}
		return len(q.Running) > 0 || len(q.Pending) > 0, nil
	default: // a1111
		var p struct {
			State struct {
				JobCount int `json:"job_count"`
			} `json:"state"`
		}
		if err := b.get(ctx, "/sdapi/v1/progress", "skip_current_image=true", &p); err != nil {
			return false, err
		}
		return p.State.JobCount != 0, nil
	}
}

// get fetches path (with query) from the backend and decodes its JSON.
func (b *deadBackend) get(ctx context.Context, path, query string, v any) error {
	u := b.base.JoinPath(path)
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: %v", errBackendDown, err)
		}
		return err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxDeadHolderAnswer)
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, body)
		return fmt.Errorf("shim: %s answered %s", u.Redacted(), resp.Status)
	}
	return json.NewDecoder(body).Decode(v)
}

// backendOptions names the shim's backend in its holder description, for
// the profiles that can say whether they are busy. The URL goes without
// user info: every local user can read the description.
func backendOptions(cfg Config) []gpulock.Option {
	if cfg.Profile.Name != "comfyui" && cfg.Profile.Name != "a1111" {
		return nil
	}
	u := *cfg.Upstream
	u.User = nil
	return []gpulock.Option{gpulock.WithBackend(cfg.Profile.Name, u.String())}
}

// waitDeadHolder waits, right after the shim took the lock, for the
// backend of a holder that died holding it (see WaitDeadHolder), bounded by
// IdleTimeout. The shim's own upstream may be asked wherever it is. If ctx
// ends first, the lock is released (the next holder waits in turn) and the
// error returned.
func (s *Shim) waitDeadHolder(ctx context.Context, h *gpulock.Handle) error {
	_, err := WaitDeadHolder(ctx, h, DeadHolderOptions{Timeout: s.cfg.IdleTimeout, Logger: s.cfg.Logger, Allow: []*url.URL{s.cfg.Upstream}})
	if err != nil {
		_ = h.Release()
	}
	return err
}
