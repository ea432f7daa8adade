package cluster

import (
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Turn says where a job's place in the line goes: the library's fair-turn
// rules (gpulock/fairturns.go) applied to the cluster's one line.
//
// A job's place is a key set once, when it first enqueues, and kept when
// it goes back to its place: the time it arrived (Redis's clock), moved
// one aging step earlier per level above normal (later per level below),
// and, with fair turns, no earlier than one aging step after the key of
// the last job of the same client still in the cluster (waiting, matched
// or running). A freed GPU takes the job with the smallest key it can
// serve. So levels go first and a wait gains a level per aging step (a
// low job counts as a normal one that arrived an aging step later), a
// client with many jobs gets one per round, and a client that comes later
// is not left behind all of them.
type Turn struct {
	// Client names who the job is for; jobs with an empty Client share one.
	Client string
	// Priority is the job's level.
	Priority gpulock.Priority
	// ArrivalOrder turns fair shares between clients off: keys are the
	// arrival time moved by the level only.
	ArrivalOrder bool
	// Aging is the aging step and the length of a round (default
	// gpulock.DefaultAging).
	Aging time.Duration
	// Front puts the job ahead of every job waiting in line (ComfyUI's
	// "front": true): its key becomes one less than the first one's. The
	// gateway sets it only for a job whose level is above normal, so it
	// goes to the front of its level, the highest (see gateway/front.go).
	Front bool
	// Model is the model the job loads ("": none known). Among several
	// free GPUs the job takes one whose last job loaded the same model
	// (see models.go); it never waits for one.
	Model string
	// Pin, when set, is the only member (node/gpu/profile) that may run
	// the job (see Store.EnqueuePinned).
	Pin string
}

// args are the script arguments of t: client, level, fair (1 or 0), aging
// in microseconds, front (1 or 0), model, pin.
func (t Turn) args() []any {
	aging := t.Aging
	if aging <= 0 {
		aging = gpulock.DefaultAging
	}
	fair := 1
	if t.ArrivalOrder {
		fair = 0
	}
	front := 0
	if t.Front {
		front = 1
	}
	return []any{t.Client, int(min(max(t.Priority, gpulock.PriorityLow), gpulock.PriorityHigh)), fair, aging.Microseconds(), front, t.Model, t.Pin}
}
