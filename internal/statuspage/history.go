package statuspage

import (
	"sync"
	"time"
)

// History keeps, per lock, the busy share and line length of the last n
// buckets of a width each (60 one-minute buckets, an hour, by default): a
// ring buffer per lock, fed by Record. It is safe for concurrent use.
type History struct {
	width   time.Duration
	buckets int

	mu    sync.Mutex
	rings map[string][]bucket
}

type bucket struct {
	start  time.Time
	probes int
	busy   int
	line   int
}

// NewHistory returns a History of n buckets of width (defaults when zero:
// a minute, 60 buckets).
func NewHistory(width time.Duration, n int) *History {
	if width <= 0 {
		width = time.Minute
	}
	if n <= 0 {
		n = 60
	}
	return &History{width: width, buckets: n, rings: map[string][]bucket{}}
}

// Width returns the width of one bucket.
func (h *History) Width() time.Duration { return h.width }

// Span returns the span the buckets cover.
func (h *History) Span() time.Duration { return time.Duration(h.buckets) * h.width }

// Record adds one probe of lock name at now: whether it was held and how
// many waited.
func (h *History) Record(name string, now time.Time, held bool, line int) {
	start := now.Truncate(h.width)
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rings[name]
	if len(r) == 0 || r[len(r)-1].start.Before(start) {
		r = append(r, bucket{start: start})
		if len(r) > h.buckets {
			r = r[len(r)-h.buckets:]
		}
	}
	b := &r[len(r)-1]
	b.probes++
	if held {
		b.busy++
	}
	b.line = max(b.line, line)
	h.rings[name] = r
}

// Snapshot returns every lock's samples, oldest first, dropping buckets
// older than the window before now.
func (h *History) Snapshot(now time.Time) map[string][]Sample {
	from := now.Truncate(h.width).Add(-time.Duration(h.buckets-1) * h.width)
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]Sample, len(h.rings))
	for name, r := range h.rings {
		s := make([]Sample, 0, len(r))
		for _, b := range r {
			if b.start.Before(from) || b.probes == 0 {
				continue
			}
			s = append(s, Sample{Start: b.start, Busy: float64(b.busy) / float64(b.probes), Line: b.line})
		}
		out[name] = s
	}
	return out
}
