package gpulock

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// HolderPIDs returns the processes that the kernel lists in /proc/locks as
// holding a flock(2) on the file at path: the process that took the lock,
// even when others inherited its descriptor. The path is not followed
// through a symlink. It returns an empty list when nobody holds the file,
// and an error when the file or the table cannot be read.
func HolderPIDs(path string) ([]int, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("gpulock: reading the holder of %s: %w", path, err)
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("gpulock: reading the holder of %s: no inode number", path)
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, fmt.Errorf("gpulock: reading the kernel's lock table: %w", err)
	}
	defer f.Close()
	dev := uint64(sys.Dev)
	exact := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), sys.Ino)
	inode := fmt.Sprintf(":%d", sys.Ino)
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 4312 fe:00:9979074 0 EOF"; blocked
		// requests carry "->" after the number and are not held.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		if id := fields[5]; id != exact && !strings.HasSuffix(id, inode) {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gpulock: reading the kernel's lock table: %w", err)
	}
	return pids, nil
}

// AncestorOf reports whether pid is this process or one of its ancestors.
func AncestorOf(pid int) bool {
	for p := os.Getpid(); p > 0; {
		if p == pid {
			return true
		}
		parent, ok := parentPID(p)
		if !ok || parent == p {
			return false
		}
		p = parent
	}
	return false
}

// parentPID reads the parent of pid from /proc/<pid>/stat.
func parentPID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid ...": comm may hold ')' and spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}
