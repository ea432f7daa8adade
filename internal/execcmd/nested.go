package execcmd

import (
	"os"
	"strconv"
	"strings"

	"github.com/gpulock/gpulock/gpulock"
)

// notOurs drops from locks, all found busy, those whose holder is this
// process or one of its ancestors (an enclosing `gpulock exec`, or a
// flock(1) that runs us): waiting for them would wait for ourselves. A
// request left with none is refused. The holder is the kernel's
// (/proc/locks), not what GPULOCK_HELD_GPU says: a stale variable does not
// refuse a free GPU, and a removed one does not hide the parent.
func notOurs(locks []*gpulock.Lock) ([]*gpulock.Lock, error) {
	var free []*gpulock.Lock
	var ours []*gpulock.Lock
	holder := 0
	for _, l := range locks {
		pid := ancestorHolder(l)
		if pid == 0 {
			free = append(free, l)
			continue
		}
		ours = append(ours, l)
		holder = pid
	}
	if len(free) > 0 {
		return free, nil
	}
	gpus := gpusOf(ours)
	what := "GPU " + gpuList(gpus) + " is"
	if len(gpus) > 1 {
		what = "GPUs " + gpuList(gpus) + " are all"
	}
	return nil, Exitf(ExitUsage, "%s already held by %s, which runs this gpulock: waiting would wait for ourselves; run the command directly, or ask for another GPU",
		what, processName(holder))
}

// ancestorHolder is the pid of l's holder if that is this process or one of
// its ancestors, else 0 (also when the kernel's table cannot be read).
func ancestorHolder(l *gpulock.Lock) int {
	pids, err := gpulock.HolderPIDs(l.Path())
	if err != nil {
		return 0
	}
	for _, pid := range pids {
		if gpulock.AncestorOf(pid) {
			return pid
		}
	}
	return 0
}

// processName names pid for a message: "gpulock exec (pid 12)" or
// "flock (pid 12)"; gpulock-exec as "an enclosing gpulock-exec".
func processName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	name := "process"
	if err == nil && args[0] != "" {
		name = args[0]
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		switch {
		case name == "gpulock" && len(args) > 1 && args[1] == "exec":
			name = "an enclosing gpulock exec"
		case name == "gpulock-exec":
			name = "an enclosing gpulock-exec"
		}
	}
	return name + " (pid " + strconv.Itoa(pid) + ")"
}

// gpusOf lists the GPUs of locks.
func gpusOf(locks []*gpulock.Lock) []int {
	gpus := make([]int, len(locks))
	for i, l := range locks {
		gpus[i] = l.GPU()
	}
	return gpus
}
