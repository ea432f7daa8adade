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
	"github.com/gpulock/gpulock/internal/deadwait"
)

// WaitDeadBackend is a DeadHolderWait without the net package, for the
// small gpulock-exec binary: net (and net/http) would link it dynamically
// (see doc.go). It waits by internal/deadwait's rule, as internal/shim's
// WaitDeadHolder does; only how it asks differs: only a known profile and
// an http URL on a loopback address are asked (plain HTTP/1.0 over a
// loopback socket, see loopget.go). An https one on a loopback address,
// which gpulock exec would ask, cannot be asked without crypto/tls: it
// fails (deadwait.ErrCannotAsk) rather than going ahead, and the next
// holder waits in turn.
func WaitDeadBackend(ctx context.Context, h *gpulock.Handle, o DeadHolderOptions) error {
	_, err := deadwait.Wait(ctx, h, checkLoopBackend, deadwait.Options{Logger: o.Logger, Once: o.Once})
	return err
}

// The bounds of WaitDeadBackend: internal/shim's for the same wait (a test
// checks that they agree).
const (
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
func checkLoopBackend(b gpulock.Backend) (deadwait.Backend, error) {
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
		return nil, fmt.Errorf("%w: upstream %s is https, which gpulock-exec cannot ask: run gpulock exec (the full gpulock binary) to wait for it", deadwait.ErrCannotAsk, u.Redacted())
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

// Profile is the backend's kind, for logs.
func (b *loopBackend) Profile() string { return b.profile }

// Where is the backend's URL without credentials, for logs.
func (b *loopBackend) Where() string { return b.base.Redacted() }

// Busy asks the backend whether it runs or queues a job. A refused
// connection gives errBackendDown (deadwait.ErrDown): nothing runs there
// any more.
func (b *loopBackend) Busy(ctx context.Context) (bool, error) {
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
