package shim

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httputil"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/statuspage"
)

// What callers of the shim's own pages (/gpulock/status, /gpulock/metrics,
// its error answers) are shown. One rule, fullDetail, decides per request:
// full detail (holders' and waiters' command lines, other clients' request
// ids, the upstream URL) goes to callers on the machine itself, or to every
// caller with Config.StatusDetail (--status-detail). Everyone else gets the
// same document masked: command lines cut to the program's name, request
// ids replaced by a keyed hash (a caller that sends its own X-Request-Id
// sees its own entry as is), the upstream hidden. Control characters are
// always escaped, whoever asks (escapeText).

// Masked values.
const (
	// maskedUpstream stands for the upstream URL in a masked document.
	maskedUpstream = "(hidden)"
	// detailFull and detailMasked are the values of ShimStatus.Detail.
	detailFull   = "full"
	detailMasked = "masked"
)

// view is what one caller is shown.
type view struct {
	full bool
	self string // the caller's own X-Request-Id, shown as is
	key  []byte // the shim's key for hashing request ids
}

// viewFor returns the view of the caller of r.
func (s *Shim) viewFor(r *http.Request) view {
	return view{full: s.fullDetail(r), self: r.Header.Get(HeaderRequestID), key: s.detailKey}
}

// fullDetail reports whether the caller of r sees full detail: with
// --status-detail, or when it is a loopback caller. This is the one rule.
func (s *Shim) fullDetail(r *http.Request) bool {
	if masked, _ := r.Context().Value(maskedCaller{}).(bool); masked {
		return s.cfg.StatusDetail
	}
	return s.cfg.StatusDetail || loopbackCaller(r)
}

// maskedCaller marks, in an outgoing request's context, a caller that is
// not a loopback caller: ReverseProxy's error handler gets the outgoing
// request, whose X-Forwarded-For no longer holds the client's.
type maskedCaller struct{}

// markMasked marks pr's outgoing request when its caller is not a
// loopback caller (only then: pass-through requests from loopback, the
// common case, cost nothing more).
func markMasked(pr *httputil.ProxyRequest) {
	if !loopbackCaller(pr.In) {
		pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), maskedCaller{}, true))
	}
}

// newDetailKey returns a random key for hashing request ids, so that a
// masked id cannot be found by hashing guesses.
func newDetailKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails on Linux (crypto/rand panics otherwise)
	return k
}

// loopbackCaller is the one rule of who sees full detail, shared with the
// gateway's page (statuspage.LoopbackCaller).
func loopbackCaller(r *http.Request) bool { return statuspage.LoopbackCaller(r) }

// text returns s as shown to anyone: control characters escaped.
func (v view) text(s string) string { return escapeText(s) }

// command returns a command line as the caller may see it: whole, or cut
// to the program's base name.
func (v view) command(cmd string) string {
	if v.full || cmd == "" {
		return escapeText(cmd)
	}
	prog, rest, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	prog = path.Base(prog)
	if strings.TrimSpace(rest) != "" {
		prog += " …"
	}
	return escapeText(prog)
}

// requestID returns a client's request id as the caller may see it: whole
// when full or the caller's own, otherwise a keyed hash.
func (v view) requestID(id string) string {
	if v.full || id == "" || id == v.self {
		return escapeText(id)
	}
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(id))
	return "hash:" + hex.EncodeToString(m.Sum(nil))[:16]
}

// upstream returns the backend's URL (already redacted) as the caller may see it.
func (v view) upstream(u string) string {
	if !v.full {
		return maskedUpstream
	}
	return escapeText(u)
}

// backend names the backend in an error answer: its address and the
// error met only in full detail.
func (v view) backend(u string, err error) string {
	if !v.full {
		return "the backend"
	}
	return escapeText(fmt.Sprintf("the backend at %s (%v)", u, err))
}

// detail names the view, for ShimStatus.Detail.
func (v view) detail() string {
	if v.full {
		return detailFull
	}
	return detailMasked
}

// lockStatus returns the lock's status as the caller may see it.
func (v view) lockStatus(st gpulock.Status) gpulock.Status {
	st.Name, st.Path = v.text(st.Name), v.text(st.Path)
	if st.Holder != nil {
		h := *st.Holder
		h.Host, h.Service, h.Command = v.text(h.Host), v.text(h.Service), v.command(h.Command)
		if h.Backend != nil {
			b := *h.Backend
			b.Profile, b.Upstream = v.text(b.Profile), v.upstream(b.Upstream)
			h.Backend = &b
		}
		st.Holder = &h
	}
	st.Owner = v.owner(st.Owner)
	st.Error = v.text(st.Error)
	waiters := make([]gpulock.WaiterStatus, len(st.Waiters))
	for i, w := range st.Waiters {
		w.Host, w.Service, w.Command = v.text(w.Host), v.text(w.Service), v.command(w.Command)
		w.Client, w.Priority = v.requestID(w.Client), v.text(w.Priority)
		w.Owner = v.owner(w.Owner)
		waiters[i] = w
	}
	if st.Waiters != nil {
		st.Waiters = waiters
	}
	return st
}

// owner returns the kernel's view of an owner as the caller may see it.
func (v view) owner(o *gpulock.Owner) *gpulock.Owner {
	if o == nil {
		return nil
	}
	c := *o
	c.User, c.Comm = v.text(c.User), v.text(c.Comm)
	return &c
}

// shimStatus returns the shim's part of the status as the caller may see it.
func (v view) shimStatus(st ShimStatus) ShimStatus {
	st.Detail = v.detail()
	st.Service, st.Profile, st.Upstream = v.text(st.Service), v.text(st.Profile), v.upstream(st.Upstream)
	queue := make([]QueueEntry, len(st.Queue))
	for i, q := range st.Queue {
		q.RequestID, q.Route = v.requestID(q.RequestID), v.text(q.Route)
		q.Client, q.Priority = v.requestID(q.Client), v.text(q.Priority)
		queue[i] = q
	}
	st.Queue = queue
	clients := make(map[string]int, len(st.Clients))
	for c, n := range st.Clients {
		clients[v.requestID(c)] += n
	}
	st.Clients = clients
	st.Live = v.live(st.Live)
	return st
}

// live returns the status page's part as the caller may see it.
func (v view) live(l statuspage.Live) statuspage.Live {
	l.Host = v.text(l.Host)
	if l.GPUs != nil {
		gpus := make([]gpulock.Status, len(l.GPUs))
		for i, g := range l.GPUs {
			gpus[i] = v.lockStatus(g)
		}
		l.GPUs = gpus
	}
	if l.Running != nil {
		running := make([]statuspage.Job, len(l.Running))
		for i, j := range l.Running {
			j.Client, j.Route = v.requestID(j.Client), v.text(j.Route)
			running[i] = j
		}
		l.Running = running
	}
	if l.Recent != nil {
		recent := make([]statuspage.Finished, len(l.Recent))
		for i, f := range l.Recent {
			f.Client, f.Service, f.Route, f.Result = v.requestID(f.Client), v.text(f.Service), v.text(f.Route), v.text(f.Result)
			recent[i] = f
		}
		l.Recent = recent
	}
	if !v.full && l.Backend.Error != "" {
		l.Backend.Error = "does not answer"
	}
	l.Backend.Error = escapeText(l.Backend.Error)
	if l.Banners != nil {
		banners := make([]statuspage.Banner, len(l.Banners))
		for i, b := range l.Banners {
			if !v.full && b.Kind == statuspage.BannerBackendDown {
				b.Text = "The backend does not answer. GPU requests fail until it is back."
			}
			b.Kind, b.Text = v.text(b.Kind), v.text(b.Text)
			banners[i] = b
		}
		l.Banners = banners
	}
	return l
}

// escapeText escapes what a terminal or a log viewer could take for
// commands: C0 and C1 control characters, DEL, Unicode format characters
// (bidirectional overrides, zero-width marks) and invalid UTF-8, as \xNN
// or \u{NNNN}. Other text, backslashes included, is left as is.
func escapeText(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u{%04x}`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether escapeText would change s.
func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports whether r is a control or format character.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
