package execcmd

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// errNoProc says that /proc cannot tell the members of a group.
var errNoProc = errors.New("gpulock: /proc cannot be read")

// groupHasOthers reports whether process group pgid has a member other
// than this process. Where /proc cannot tell, it says yes: the guard then
// waits the whole grace before its SIGKILL.
func groupHasOthers(pgid int) bool {
	members, err := groupMembers(pgid)
	if err != nil {
		return true
	}
	self := os.Getpid()
	for _, pid := range members {
		if pid != self {
			return true
		}
	}
	return false
}

// groupMembers lists the processes of group pgid from /proc.
func groupMembers(pgid int) ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, errNoProc
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, errNoProc
	}
	var pids []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if g, ok := procGroup(pid); ok && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procGroup reads the process group of pid from /proc/<pid>/stat; false
// when the process is gone, or a zombie (it no longer holds anything).
func procGroup(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	// After the command's name: state, ppid, pgrp.
	f := strings.Fields(s[i+1:])
	if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	g, err := strconv.Atoi(f[2])
	return g, err == nil
}
