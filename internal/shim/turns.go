package shim

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	instr "github.com/gpulock/gpulock/internal/metrics"

	"github.com/gpulock/gpulock/gpulock"
)

// Headers a client may send to name itself and, where the shim allows it,
// its priority.
const (
	HeaderClient   = "X-GPULock-Client"
	HeaderPriority = "X-GPULock-Priority"
)

// maxClientLen bounds a client name taken from a request.
const maxClientLen = 128

// Turns says how the shim's line shares the GPU between clients.
type Turns struct {
	// ArrivalOrder turns fair shares off: plain first come, first served.
	ArrivalOrder bool
	// Priority is the level of this shim's requests (default normal).
	Priority gpulock.Priority
	// PriorityHeader lets a request set its own level with
	// X-GPULock-Priority. Off by default, so that an anonymous client
	// cannot jump the line.
	PriorityHeader bool
	// TrustedProxies are the addresses whose X-Forwarded-For names the
	// client (an nginx in front of the shim); others' is ignored.
	TrustedProxies []netip.Prefix
}

// ParseTrustedProxies reads a comma-separated list of addresses and
// prefixes (127.0.0.1, 10.0.0.0/8, ::1).
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("shim: %q is not an address or prefix for --trust-proxy (such as 127.0.0.1 or 10.0.0.0/8)", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// turnOf returns whose turn a GPU request is and at which level (see
// Turns.TurnOf).
func (s *Shim) turnOf(r *http.Request, promptClient string) gpulock.Turn {
	return s.cfg.Turns.TurnOf(r, promptClient)
}

// TurnOf returns whose turn a GPU request is and at which level. The
// client is promptClient (ComfyUI's client_id, when the request names
// one), else the X-GPULock-Client header, else the client's address. The
// cluster's gateway names clients by the same rule.
func (t Turns) TurnOf(r *http.Request, promptClient string) gpulock.Turn {
	turn := gpulock.Turn{Client: promptClient, Priority: t.Priority}
	if turn.Client == "" {
		turn.Client = strings.TrimSpace(r.Header.Get(HeaderClient))
	}
	if turn.Client == "" {
		turn.Client = "addr:" + t.clientAddr(r)
	}
	if len(turn.Client) > maxClientLen {
		turn.Client = turn.Client[:maxClientLen]
	}
	if t.PriorityHeader {
		if p, err := gpulock.ParsePriority(r.Header.Get(HeaderPriority)); err == nil && r.Header.Get(HeaderPriority) != "" {
			turn.Priority = p
		}
	}
	return turn
}

// clientAddr is the client's address: the peer's, or, when the peer is a
// trusted proxy, the last address in X-Forwarded-For that is not one.
func (t Turns) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !t.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !t.trusted(hop) {
			return hop
		}
		host = hop
	}
	return host
}

func (t Turns) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range t.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// turnClient is the client whose turn a prompt naming promptClient is: ""
// (the request's header or address decides) when it names the shim's own
// websocket client.
func turnClient(promptClient, shimClientID string) string {
	if promptClient == shimClientID {
		return ""
	}
	return promptClient
}

// backendTurn is the turn of the backend's own work: it runs anyway, so
// it is high.
func (s *Shim) backendTurn() gpulock.Turn {
	return gpulock.Turn{Client: "backend:" + s.cfg.Name, Priority: gpulock.PriorityHigh}
}

// fairOrder sorts the places in line in the order fair turns will most
// likely serve them: higher levels first (with aging), then the k-th
// waiting request of each client in round k, then by arrival. The library
// decides the real order; this is what the status shows as positions.
func fairOrder(places []place, now time.Time, arrival bool) {
	slices.SortFunc(places, func(a, b place) int { return cmp.Compare(a.id, b.id) })
	round := make([]int, len(places))
	seen := map[string]int{}
	for i, p := range places {
		round[i] = seen[p.turn.Client]
		seen[p.turn.Client]++
	}
	idx := make([]int, len(places))
	for i := range idx {
		idx[i] = i
	}
	level := func(i int) gpulock.Priority {
		return places[i].turn.Level(places[i].since, now, gpulock.DefaultAging)
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if c := cmp.Compare(level(b), level(a)); c != 0 {
			return c
		}
		if arrival {
			return 0
		}
		return cmp.Compare(round[a], round[b])
	})
	sorted := make([]place, len(places))
	for i, j := range idx {
		sorted[i] = places[j]
	}
	copy(places, sorted)
}

// lineTurnGauges are the metrics of fair turns: the requests in line per
// level (with aging) and how many clients they are for. Client names stay
// out of the labels (they are unbounded, and masked for anonymous
// callers): /gpulock/status counts the requests of each client.
func lineTurnGauges(s *Shim, opts func(name, help string) instr.Opts) []instr.Collector {
	levels := func() map[gpulock.Priority]int {
		now, n := time.Now(), map[gpulock.Priority]int{}
		for _, p := range s.line.snapshot() {
			n[p.turn.Level(p.since, now, gpulock.DefaultAging)]++
		}
		return n
	}
	var out []instr.Collector
	for _, level := range []gpulock.Priority{gpulock.PriorityLow, gpulock.PriorityNormal, gpulock.PriorityHigh} {
		o := opts("waiting", "GPU requests waiting in line in this shim, by level now (priority raised by aging).")
		o.ConstLabels = maps.Clone(o.ConstLabels)
		o.ConstLabels["priority"] = level.String()
		out = append(out, instr.NewGaugeFunc(o, func() float64 { return float64(levels()[level]) }))
	}
	out = append(out, instr.NewGaugeFunc(opts("waiting_clients", "Clients with GPU requests waiting in line in this shim."),
		func() float64 {
			seen := map[string]bool{}
			for _, p := range s.line.snapshot() {
				seen[p.turn.Client] = true
			}
			return float64(len(seen))
		}))
	return out
}
