package gpulock

import (
	"io/fs"
)

// Owner is the kernel's word on who holds a lock file or a ticket. The
// description in a file is text that any process able to write the file may
// have written; no user can forge what the kernel says.
type Owner struct {
	// PID is the process that took the flock, from /proc/locks; 0 when the
	// kernel cannot say (a process of another pid namespace).
	PID int `json:"pid"`
	// UID is the user of that process; for a ticket, the file's owner, who
	// made it. Null when unknown.
	UID *int `json:"uid"`
	// User is UID's user name, where the system has one.
	User string `json:"user,omitempty"`
	// Comm is the name of the process (its comm, as /proc shows it), empty
	// when it is gone.
	Comm string `json:"comm,omitempty"`
	// Mismatch reports that the description in the file names another pid
	// than the kernel: written by another process, or from another pid
	// namespace. Trust PID.
	Mismatch bool `json:"mismatch,omitempty"`
	// Gone reports that the process that took the flock has exited while the
	// lock is still held: processes that inherited its descriptor hold it.
	// A lock held that way is an orphan; HeldBy says by whom.
	Gone bool `json:"gone,omitempty"`
	// HeldBy lists, when Gone, the processes whose descriptors of the file
	// hold the flock, as far as this process may look (root sees all).
	HeldBy []Process `json:"held_by,omitempty"`
}

// Process is a running process as the kernel shows it.
type Process struct {
	// PID is its process id.
	PID int `json:"pid"`
	// UID is its real user id.
	UID int `json:"uid"`
	// User is UID's user name, where the system has one.
	User string `json:"user,omitempty"`
	// Comm is its name (its comm, as /proc shows it).
	Comm string `json:"comm,omitempty"`
}

// ownerReader finds owners, reading the kernel's lock table once.
type ownerReader struct {
	table lockTable
	known bool
	users map[int]string
}

func newOwnerReader() *ownerReader {
	r := &ownerReader{users: make(map[int]string)}
	r.table, r.known = readLockTable()
	return r
}

// lockOwner returns the kernel's view of the holder of the open lock file
// (nil where the kernel says nothing) and whether it is held; known is
// false when the table could not be read.
func (r *ownerReader) lockOwner(fi fs.FileInfo, describedPID int) (o *Owner, held, known bool) {
	if !r.known {
		return nil, false, false
	}
	pids, held := r.table.holders(fi)
	if !held {
		return nil, false, true
	}
	o = &Owner{PID: max(pids[0], 0)}
	if p, ok := readProcess(o.PID); ok {
		o.UID, o.Comm = &p.UID, p.Comm
	} else if o.PID != 0 { // 0: not visible in this pid namespace, which says nothing
		o.Gone = true
		o.HeldBy = processesWithOpen(fi)
		for i := range o.HeldBy {
			o.HeldBy[i].User = r.userName(o.HeldBy[i].UID)
		}
	}
	r.finish(o, describedPID)
	return o, true, true
}

// ticketOwner returns the kernel's view of a live ticket's owner: the
// process holding its flock, and the file's owner.
func (r *ownerReader) ticketOwner(fi fs.FileInfo, describedPID int) *Owner {
	o := &Owner{}
	if uid, ok := fileUID(fi); ok {
		o.UID = &uid
	}
	if r.known {
		if pids, held := r.table.holders(fi); held {
			o.PID = max(pids[0], 0)
			if p, ok := readProcess(o.PID); ok {
				o.Comm = p.Comm
			} else if o.PID != 0 {
				o.Gone = true
			}
		}
	}
	r.finish(o, describedPID)
	return o
}

// finish names the user and compares the description's pid.
func (r *ownerReader) finish(o *Owner, describedPID int) {
	if o.UID != nil {
		o.User = r.userName(*o.UID)
	}
	o.Mismatch = describedPID != 0 && o.PID != 0 && describedPID != o.PID
}

func (r *ownerReader) userName(uid int) string {
	if name, ok := r.users[uid]; ok {
		return name
	}
	name := lookupUserName(uid) // username.go
	r.users[uid] = name
	return name
}
