package gpulock

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockTable is the kernel's table of granted flocks (/proc/locks), read
// once and asked about many files.
type lockTable struct {
	byInode map[uint64][]lockEntry
}

// lockEntry is one granted flock: the file's device as the table writes it
// ("fe:00") and the process that took it (0 or less when the kernel cannot
// say: a process gone in another pid namespace, or an OFD lock).
type lockEntry struct {
	dev string
	pid int
}

// readLockTable reads /proc/locks. known is false when it cannot be read.
func readLockTable() (t lockTable, known bool) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return lockTable{}, false
	}
	defer f.Close()
	t.byInode = make(map[uint64][]lockEntry)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 4312 fe:00:9979074 0 EOF"; blocked
		// requests carry "->" after the number and are not held.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		i := strings.LastIndexByte(fields[5], ':')
		if i < 0 {
			continue
		}
		ino, err := strconv.ParseUint(fields[5][i+1:], 10, 64)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(fields[4])
		t.byInode[ino] = append(t.byInode[ino], lockEntry{dev: fields[5][:i], pid: pid})
	}
	if sc.Err() != nil {
		return lockTable{}, false
	}
	return t, true
}

// holders returns the processes holding a flock on the file, and whether
// any does. Overlay file systems may report another device than stat: an
// entry with the same inode and another device counts when none matches
// the device exactly.
func (t lockTable) holders(fi fs.FileInfo) (pids []int, held bool) {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, false
	}
	entries := t.byInode[sys.Ino]
	dev := uint64(sys.Dev)
	exact := fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
	var loose []int
	for _, e := range entries {
		if e.dev == exact {
			pids = append(pids, e.pid)
		} else {
			loose = append(loose, e.pid)
		}
	}
	if len(pids) == 0 {
		pids = loose
	}
	return pids, len(pids) > 0
}

// heldInLockTable looks for a granted flock on the file in /proc/locks.
// known is false when the table cannot be read.
func heldInLockTable(fi fs.FileInfo) (held, known bool) {
	t, known := readLockTable()
	if !known {
		return false, false
	}
	_, held = t.holders(fi)
	return held, true
}
