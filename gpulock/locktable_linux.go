package gpulock

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// heldInLockTable looks for a granted flock on the file in /proc/locks.
// known is false when the table cannot be read.
func heldInLockTable(fi fs.FileInfo) (held, known bool) {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return false, false
	}
	defer f.Close()
	dev := uint64(sys.Dev)
	exact := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), sys.Ino)
	inode := fmt.Sprintf(":%d", sys.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 4312 fe:00:9979074 0 EOF"; blocked
		// requests carry "->" after the number and are not held.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		id := fields[5]
		// Overlay filesystems may report another device: fall back to the inode.
		if id == exact || strings.HasSuffix(id, inode) {
			held = true
		}
	}
	return held, true
}
