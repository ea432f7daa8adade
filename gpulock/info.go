package gpulock

import (
	"bytes"
	"encoding/json"
	"os"
	"sync"
	"time"
)

// Holder describes the process that holds a lock. The holder writes it into
// the lock file as one line of JSON when it acquires and clears it when it
// releases, so any process can read it without taking the lock.
type Holder struct {
	// PID is the process that acquired the lock.
	PID int `json:"pid"`
	// ChildPID, when set, is a child process that shares the lock (the
	// command run by gpulock exec); the lock lives while either lives.
	ChildPID int `json:"child_pid,omitempty"`
	// Host is the holder's host name.
	Host string `json:"host"`
	// Service is the name the holder gave itself (WithService).
	Service string `json:"service"`
	// Command is the holder's command line.
	Command string `json:"command,omitempty"`
	// Backend, when set, is the backend whose GPU work the holder guards
	// (a gpulock shim's upstream; see Backend).
	Backend *Backend `json:"backend,omitempty"`
	// Since is when the lock was acquired. It stays the last field: see
	// descriptionPrefix.
	Since time.Time `json:"since"`
}

// Waiter describes a process in line for a lock.
type Waiter struct {
	// PID is the waiting process.
	PID int `json:"pid"`
	// Host is the waiter's host name.
	Host string `json:"host"`
	// Service is the name the waiter gave itself.
	Service string `json:"service"`
	// Command is the waiter's command line.
	Command string `json:"command,omitempty"`
	// Since is when this process took its place in line.
	Since time.Time `json:"since"`
	// Client is who the process's next turn is for (see Turn).
	Client string `json:"client,omitempty"`
	// Priority is that turn's level: low, normal or high.
	Priority string `json:"priority,omitempty"`
}

var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
})

// pid is this process's id.
var pid = os.Getpid()

// descriptionPrefix renders h as JSON without its closing brace and with
// its Since last and open: descriptionLine appends a time to it. It is the
// same text encodeLine makes, built once per Lock.
func descriptionPrefix(h Holder) []byte {
	line := encodeLine(h) // ..., "since":"0001-01-01T00:00:00Z"}\n
	i := bytes.LastIndex(line, []byte(`"since":"`))
	return line[:i+len(`"since":"`)]
}

// descriptionLine completes the Lock's description prefix with since.
func (l *Lock) descriptionLine(since time.Time) []byte {
	line := make([]byte, 0, len(l.descPrefix)+40)
	line = append(line, l.descPrefix...)
	line = since.AppendFormat(line, time.RFC3339Nano)
	return append(line, '"', '}', '\n')
}

// encodeLine renders v as one line of JSON ending in a newline.
func encodeLine(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs of strings, numbers and times pass here
	}
	return append(b, '\n')
}

// decodeFirstLine parses the first line of b as JSON into v. Only the first
// line counts: a writer overwrites the start of the file without truncating,
// so an older, longer description may trail it.
func decodeFirstLine(b []byte, v any) bool {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	if len(bytes.TrimSpace(line)) == 0 {
		return false
	}
	return json.Unmarshal(line, v) == nil
}

// maxInfoSize bounds what is read of a lock or ticket file's description.
const maxInfoSize = 4096

// readHead reads the start of f, where its description lives.
func readHead(f *os.File) []byte {
	buf := make([]byte, maxInfoSize)
	return buf[:readAtStart(f, buf)]
}

// alive reports whether the process a description names may still run. A
// process on another host cannot be checked and counts as alive.
func alive(host string, pids ...int) bool {
	if host != "" && host != hostname() {
		return true
	}
	for _, p := range pids {
		if pidAlive(p) {
			return true
		}
	}
	return false
}
