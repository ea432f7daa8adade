package gpulock

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Priority is the level of a wait for the lock. Higher levels go first; a
// wait's level rises by one for every aging step it has waited (see
// WithAging), up to PriorityHigh, so that nothing waits forever.
type Priority int

// The priority levels.
const (
	PriorityLow    Priority = -1
	PriorityNormal Priority = 0
	PriorityHigh   Priority = 1
)

// DefaultAging is how long a wait takes to rise one priority level: a low
// wait counts as normal after one step and as high after two. It is also
// the length of a "round" between the places in line of one client across
// processes (see Lock).
const DefaultAging = 30 * time.Second

// String returns the level's name: low, normal or high.
func (p Priority) String() string {
	switch {
	case p <= PriorityLow:
		return "low"
	case p >= PriorityHigh:
		return "high"
	}
	return "normal"
}

// ParsePriority reads a level name: low, normal or high (any case), or the
// numbers -1, 0 and 1.
func ParsePriority(s string) (Priority, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "low", "-1":
		return PriorityLow, nil
	case "normal", "0", "":
		return PriorityNormal, nil
	case "high", "1":
		return PriorityHigh, nil
	}
	return PriorityNormal, fmt.Errorf("gpulock: %s is not a priority; use low, normal or high", strconv.Quote(s))
}

// clamp keeps p within the levels.
func (p Priority) clamp() Priority {
	return min(max(p, PriorityLow), PriorityHigh)
}

// Turn says whose turn a wait for the lock is: the client it is for and
// its priority. Turns go round-robin between the clients that wait, first
// come first served within a client, higher priorities first.
type Turn struct {
	// Client names who the wait is for: a user, an API client id, an
	// address. Waits with an empty Client share one client.
	Client string
	// Priority is the wait's level; it rises as the wait goes on.
	Priority Priority
}

// Level is the priority of a wait that began at since, at now, with one
// level gained per aging step (the aging rule; see WithAging).
func (t Turn) Level(since, now time.Time, aging time.Duration) Priority {
	p := t.Priority.clamp()
	if aging > 0 && p < PriorityHigh {
		p += Priority(now.Sub(since) / aging)
	}
	return p.clamp()
}
