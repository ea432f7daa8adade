package execcmd

import (
	"strconv"
	"strings"

	"github.com/gpulock/gpulock/gpulock"
)

// OwnerPID is the pid to show for a holder or waiter: the kernel's where it
// is known, else the described one, marked when the two disagree.
func OwnerPID(o *gpulock.Owner, described int) string {
	switch {
	case o == nil || o.PID == 0:
		if described == 0 {
			return "?"
		}
		return strconv.Itoa(described)
	case o.Mismatch:
		return strconv.Itoa(o.PID) + " (file says " + strconv.Itoa(described) + ")"
	default:
		return strconv.Itoa(o.PID)
	}
}

// OwnerUser names the owner's user: its name, else its uid.
func OwnerUser(o *gpulock.Owner) string {
	switch {
	case o == nil || o.UID == nil:
		return ""
	case o.User != "":
		return o.User
	default:
		return strconv.Itoa(*o.UID)
	}
}

// OrphanText describes a lock whose taker is gone: "orphan: wrapper 123
// gone, held by pid 456 (sleep)".
func OrphanText(o *gpulock.Owner) string {
	s := "orphan: wrapper"
	if o.PID != 0 {
		s += " " + strconv.Itoa(o.PID)
	}
	s += " gone, held by "
	if len(o.HeldBy) == 0 {
		return s + "processes this user may not see (try as root)"
	}
	parts := make([]string, len(o.HeldBy))
	for i, p := range o.HeldBy {
		parts[i] = "pid " + strconv.Itoa(p.PID) + " (" + Printable(p.Comm) + ")"
	}
	return s + strings.Join(parts, ", ")
}

// waiterPID is the pid of a waiter for matching: the kernel's where known.
func waiterPID(w gpulock.WaiterStatus) int {
	if w.Owner != nil && w.Owner.PID != 0 {
		return w.Owner.PID
	}
	return w.PID
}
