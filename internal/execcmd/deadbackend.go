package execcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// WaitDeadBackend is a DeadHolderWait without the net package, for the
// small gpulock-exec binary: net (and net/http) would link it dynamically
// (see doc.go). It asks as internal/shim's WaitDeadHolder does, with the
// same rules, bounds and log lines: only a known profile and an http URL on
// a loopback address are asked (plain HTTP/1.0 over a loopback socket, see
// loopget.go); an https one cannot be asked without crypto/tls, so exec
// logs a warning and goes ahead, as for any backend it may not ask. Idle
// counts only when two answers in a row, deadHolderPoll apart, say so: a
// job the dead holder had just forwarded may not show yet. Keep it in step
// with the shim's.
func WaitDeadBackend(ctx context.Context, h *gpulock.Handle, o DeadHolderOptions) error {
	left, ok := h.Leftover()
	if !ok || left.Backend == nil {
		return nil
	}
	logger := o.Logger
	attrs := []any{"gpu", h.GPU(), "holder", left.Service, "holder_pid", left.PID}
	b, err := checkLoopBackend(*left.Backend)
	if err != nil {
		logger.Warn("the previous holder of the GPU ended without releasing it and named a backend that is not asked", append(attrs, "err", err)...)
		h.KeepLeftover(false) // nobody could ask it: not passed on
		return nil
	}
	attrs = append(attrs, "profile", b.profile, "upstream", b.base.Redacted())

	h.KeepLeftover(true) // if we die or give up now, the next holder waits in turn
	start := time.Now()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadHolderTimeout)
	defer cancel()
	t := time.NewTimer(deadHolderPoll)
	defer t.Stop()
	logged := false
	idle := 0 // idle answers in a row
	for {
		busy, err := b.busy(tctx)
		t.Reset(deadHolderPoll) // the next answer comes a full poll after this one
		if errors.Is(err, errBackendDown) || (err == nil && !busy) {
			idle++
		} else {
			idle = 0 // busy, or no clear answer: fail closed
		}
		if idle >= deadHolderIdleAnswers {
			waited := time.Since(start)
			if logged {
				logger.Info("the dead holder's backend is idle; going ahead", append(attrs, "waited", waited.Round(time.Millisecond))...)
			}
			h.KeepLeftover(false)
			return nil
		}
		if o.Once && idle == 0 {
			return fmt.Errorf("%w (%s at %s)", ErrDeadHolderBusy, b.profile, b.base.Redacted())
		}
		if !logged && idle == 0 {
			logger.Warn("the previous holder of the GPU died holding it while its backend may still run its job; waiting for the backend to be idle",
				append(attrs, "timeout", deadHolderTimeout)...)
			logged = true
		}
		select {
		case <-ctx.Done():
			logger.Info("stopped waiting for the dead holder's backend; the next holder waits for it in turn", attrs...)
			return fmt.Errorf("execcmd: waiting for the backend of a holder that died on GPU %d: %w", h.GPU(), ctx.Err())
		case <-tctx.Done():
			waited := time.Since(start)
			logger.Warn("the dead holder's backend still reports busy at the timeout; going ahead: its job and the next may overlap",
				append(attrs, "waited", waited.Round(time.Millisecond))...)
			h.KeepLeftover(false)
			return nil
		case <-t.C:
		}
	}
}

// The bounds of WaitDeadBackend: internal/shim's for the same wait (a test
// checks that they agree).
const (
	// deadHolderTimeout bounds the whole wait (shim.DefaultDeadHolderTimeout).
	deadHolderTimeout = 2 * time.Minute
	// deadHolderPoll is how often the backend is asked.
	deadHolderPoll = 100 * time.Millisecond
	// deadHolderIdleAnswers is how many idle answers in a row, each
	// deadHolderPoll after the last, make the backend idle.
	deadHolderIdleAnswers = 2
	// deadHolderAsk bounds each request.
	deadHolderAsk = 2 * time.Second
	// maxDeadHolderAnswer bounds what is read of an answer's body.
	maxDeadHolderAnswer = 1 << 20
	// maxUpstreamLen bounds the upstream URL taken from a description.
	maxUpstreamLen = 2048
)

// loopBackend is a dead holder's backend, checked: askable over a
// loopback socket.
type loopBackend struct {
	profile string
	base    *url.URL
	addrs   []netip.AddrPort // to try in turn
}

// checkLoopBackend checks a backend taken from a lock file: a profile that
// can say whether it is busy, and an http URL on a loopback address.
func checkLoopBackend(b gpulock.Backend) (*loopBackend, error) {
	if b.Profile != "comfyui" && b.Profile != "a1111" {
		return nil, fmt.Errorf("execcmd: profile %q cannot say whether it is busy", b.Profile)
	}
	if len(b.Upstream) > maxUpstreamLen {
		return nil, fmt.Errorf("execcmd: the upstream URL is over %d bytes", maxUpstreamLen)
	}
	u, err := url.Parse(b.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("execcmd: upstream %q is not a plain http(s) URL", b.Upstream)
	}
	addrs, ok := loopbackAddrs(u)
	if !ok {
		return nil, fmt.Errorf("execcmd: upstream %s is not on a loopback address", u.Redacted())
	}
	if u.Scheme == "https" {
		return nil, fmt.Errorf("execcmd: upstream %s is https, which gpulock-exec cannot ask (gpulock exec can)", u.Redacted())
	}
	return &loopBackend{profile: b.Profile, base: u, addrs: addrs}, nil
}

// loopbackAddrs are the addresses of u's host and port when the host is
// localhost (127.0.0.1, then ::1) or a loopback IP address.
func loopbackAddrs(u *url.URL) ([]netip.AddrPort, bool) {
	port := uint16(80)
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := parsePort(p)
		if err != nil {
			return nil, false
		}
		port = n
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return []netip.AddrPort{
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port),
			netip.AddrPortFrom(netip.IPv6Loopback(), port),
		}, true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() || ip.Zone() != "" {
		return nil, false
	}
	return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), port)}, true
}

// parsePort parses a URL's port, 1-65535.
func parsePort(s string) (uint16, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 65535 {
			return 0, errors.New("execcmd: bad port")
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, errors.New("execcmd: bad port")
	}
	return uint16(n), nil
}

// busy asks the backend whether it runs or queues a job. A refused
// connection gives errBackendDown: nothing runs there any more.
func (b *loopBackend) busy(ctx context.Context) (bool, error) {
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
func (b *loopBackend) get(ctx context.Context, path, query string, v any) error {
	u := b.base.JoinPath(path)
	u.RawQuery = query
	deadline := time.Now().Add(deadHolderAsk)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	uri := u.RequestURI()
	if !strings.HasPrefix(uri, "/") {
		uri = "/" + uri // a base URL without a path joins to "queue"
	}
	status, body, err := loopGet(b.addrs, u.Host, uri, deadline)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("execcmd: %s answered %d", u.Redacted(), status)
	}
	return json.Unmarshal(body, v)
}
