package gpulock

import (
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// readProcess reads pid's name, state and real uid from /proc/<pid>/status
// (one read); ok is false when it does not run (a zombie counts as gone:
// its descriptors are closed).
func readProcess(pid int) (p Process, ok bool) {
	if pid <= 0 {
		return Process{}, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Process{}, false
	}
	p = Process{PID: pid, UID: -1}
	for line := range strings.Lines(string(b)) {
		key, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
		value = strings.TrimSpace(value)
		switch key {
		case "Name":
			p.Comm = value
		case "State":
			if strings.HasPrefix(value, "Z") || strings.HasPrefix(value, "X") {
				return Process{}, false
			}
		case "Uid":
			if fields := strings.Fields(value); len(fields) > 0 {
				p.UID, _ = strconv.Atoi(fields[0])
			}
			return p, true // Name and State come first
		}
	}
	return p, true
}

// processesWithOpen lists the processes with a descriptor on the file that
// holds its flock (fdinfo shows the lock; readers and waiters have none):
// the holders of a lock whose locker has exited. It reads every
// /proc/<pid>/fd this process may read, so it is only for that rare case.
func processesWithOpen(fi fs.FileInfo) []Process {
	want, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []Process
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := "/proc/" + e.Name() + "/fd/"
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to look at
		}
		for _, fd := range fds {
			var st syscall.Stat_t
			if syscall.Stat(fdDir+fd.Name(), &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino ||
				!holdsFlock("/proc/"+e.Name()+"/fdinfo/"+fd.Name()) {
				continue
			}
			if p, ok := readProcess(pid); ok {
				out = append(out, p)
			}
			break
		}
	}
	return out
}

// holdsFlock reports whether the descriptor whose fdinfo file is path holds
// a flock: a "lock:" line for a granted FLOCK.
func holdsFlock(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "lock:")
		if !ok {
			continue
		}
		// "lock:\t1: FLOCK  ADVISORY  WRITE 4312 fe:00:9979074 0 EOF"
		if fields := strings.Fields(rest); len(fields) > 1 && fields[1] == "FLOCK" {
			return true
		}
	}
	return false
}
