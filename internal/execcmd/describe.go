package execcmd

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// describeHolder says who holds a lock, for messages: "held by comfyui (pid
// 4242, user bob) for 3m12s", "free", an orphan, or a note that the holder
// left no description. The pid and user are the kernel's where it says.
func describeHolder(st gpulock.Status) string {
	if !st.Held {
		return "free"
	}
	o, h := st.Owner, st.Holder
	if o != nil && o.Gone {
		return "held by an " + OrphanText(o)
	}
	if h == nil {
		s := "held by a process that left no description (flock(1)?)"
		if o != nil && o.PID != 0 {
			s += ": pid " + strconv.Itoa(o.PID)
			if o.Comm != "" {
				s += " (" + Printable(o.Comm) + ")"
			}
			if u := OwnerUser(o); u != "" {
				s += ", user " + Printable(u)
			}
		}
		return s
	}
	who := "pid " + OwnerPID(o, h.PID)
	if h.ChildPID != 0 {
		who += ", child " + strconv.Itoa(h.ChildPID)
	}
	if u := OwnerUser(o); u != "" {
		who += ", user " + Printable(u)
	}
	if host, _ := os.Hostname(); h.Host != "" && h.Host != host {
		who += " on " + Printable(h.Host)
	}
	return fmt.Sprintf("held by %s (%s) for %s", Printable(orUnknown(h.Service)), who, Seconds(h.HeldSeconds))
}

// aheadOf counts the processes in line before pid (all of them when pid is
// not in line yet), by the kernel's pid of each ticket where known.
func aheadOf(st gpulock.Status, pid int) int {
	for i, w := range st.Waiters {
		if waiterPID(w) == pid {
			return i
		}
	}
	return len(st.Waiters)
}

// describeWait says where a waiting process stands for one lock.
func describeWait(st gpulock.Status, pid int) string {
	s := describeHolder(st)
	switch n := aheadOf(st, pid); n {
	case 0:
		return s + ", you are next"
	case 1:
		return s + ", 1 ahead of you"
	default:
		return s + ", " + strconv.Itoa(n) + " ahead of you"
	}
}

// describeBusy says who holds a lock that could not be had, and who else
// waits for it.
func describeBusy(st gpulock.Status) string {
	s := describeHolder(st)
	switch n := len(st.Waiters); {
	case n == 1:
		s += ", 1 waiting"
	case n > 1:
		s += ", " + strconv.Itoa(n) + " waiting"
	}
	return s
}

// describeLocks applies describe to the status of each lock: just the
// description for one lock, "GPU 0 ...; GPU 2 ..." for several.
func describeLocks(locks []*gpulock.Lock, describe func(gpulock.Status) string) string {
	parts := make([]string, 0, len(locks))
	for _, l := range locks {
		st, err := l.Status()
		text := "state unknown: " + errText(err)
		if err == nil {
			text = describe(st)
		}
		if len(locks) == 1 {
			return text
		}
		parts = append(parts, "GPU "+strconv.Itoa(l.GPU())+" "+text)
	}
	return strings.Join(parts, "; ")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Seconds formats a number of seconds as a Go duration: "3m12s".
func Seconds(s float64) string {
	if s < 0 || math.IsNaN(s) {
		s = 0
	}
	return (time.Duration(math.Round(s)) * time.Second).String()
}

// gpuList formats a GPU set: "0", "0,2,3".
func gpuList(gpus []int) string {
	s := make([]string, len(gpus))
	for i, g := range gpus {
		s[i] = strconv.Itoa(g)
	}
	return strings.Join(s, ",")
}

// gpuNoun is "GPU 0" for one GPU and "any of GPUs 0,1" for several.
func gpuNoun(gpus []int) string {
	if len(gpus) == 1 {
		return "GPU " + strconv.Itoa(gpus[0])
	}
	return "any of GPUs " + gpuList(gpus)
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// LibText is a library error's message without its "gpulock: " prefix,
// which gpulock's own messages already carry.
func LibText(err error) string {
	return strings.ReplaceAll(err.Error(), "gpulock: ", "")
}
