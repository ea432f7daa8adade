package main

import (
	"os"
	"strconv"
	"strings"
)

// procGroup reads the process group of pid from /proc/<pid>/stat; false
// when the process is gone or a zombie (as the group guard's, in
// internal/execcmd, which the tests of this package cannot reach).
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
	f := strings.Fields(s[i+1:]) // state, ppid, pgrp
	if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	g, err := strconv.Atoi(f[2])
	return g, err == nil
}
