package gpulock

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// User names come from /etc/passwd, and, for a user it lacks (one of LDAP
// or another name service), from getent(1), which asks the system's name
// services as the C library would. Not os/user: with cgo on, it makes
// every program that links this package a dynamically linked one, whose
// start-up a `gpulock-exec` pays on every run (docs/BENCHMARKS.md, round 5).
const (
	passwdFile = "/etc/passwd"
	// getentTimeout bounds one getent(1) run.
	getentTimeout = 2 * time.Second
)

// lookupUserName is uid's user name, or "" when no name service knows it.
func lookupUserName(uid int) string {
	if f, err := os.Open(passwdFile); err == nil {
		name, ok := passwdName(f, uid)
		_ = f.Close()
		if ok {
			return name
		}
	}
	return getentName(uid)
}

// passwdName finds uid in passwd(5) lines ("name:x:uid:gid:..."); false
// when no line has it.
func passwdName(r io.Reader, uid int) (string, bool) {
	want := strconv.Itoa(uid)
	s := bufio.NewScanner(r)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if name, ok := passwdLineName(s.Bytes(), want); ok {
			return name, true
		}
	}
	return "", false
}

// passwdLineName is the name of a passwd(5) line whose uid field is uid.
func passwdLineName(line []byte, uid string) (string, bool) {
	if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
		return "", false
	}
	f := bytes.SplitN(line, []byte{':'}, 4)
	if len(f) < 4 || string(f[2]) != uid || len(f[0]) == 0 {
		return "", false
	}
	return string(f[0]), true
}

// getentName asks getent(1) for uid; "" when it is missing, fails, or
// takes longer than getentTimeout.
func getentName(uid int) string {
	path, err := exec.LookPath("getent")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), getentTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "passwd", strconv.Itoa(uid)).Output()
	if err != nil {
		return ""
	}
	name, ok := passwdLineName(bytes.TrimSpace([]byte(strings.SplitN(string(out), "\n", 2)[0])), strconv.Itoa(uid))
	if !ok {
		return ""
	}
	return name
}
