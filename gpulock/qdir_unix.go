//go:build unix

package gpulock

import (
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// qdir is an open queue directory. Every entry is reached relative to its
// descriptor with O_NOFOLLOW, so a symlink planted in the lock directory
// (at the queue directory's name or at a ticket's) never leads gpulock to
// read, lock or delete a file elsewhere, and no check-then-use race exists.
type qdir struct {
	fd     int
	path   string
	listed bool // names has read the directory once: seek back first
}

// openQueueDir opens the queue directory at path, making it first when
// create is set. A symlink or a non-directory at path is refused with an
// error wrapping ErrBadQueueDir; the O_NOFOLLOW|O_DIRECTORY open checks
// both without another syscall.
func openQueueDir(path string, create bool) (*qdir, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == nil:
			return &qdir{fd: fd, path: path}, nil
		case err == unix.ENOENT && create:
			create = false
			if err := unix.Mkdir(path, 0o777); err != nil && err != unix.EEXIST {
				return nil, &fs.PathError{Op: "mkdir", Path: path, Err: err}
			}
			_ = os.Chmod(path, queueDirPerm) // undo the umask; best effort, and only the owner may
			continue
		case err == unix.ELOOP:
			return nil, &fs.PathError{Op: "open", Path: path, Err: errQueueDirSymlink}
		case err == unix.ENOTDIR:
			// O_NOFOLLOW|O_DIRECTORY on a symlink to a directory gives ENOTDIR.
			why := errQueueDirNotDir
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
				why = errQueueDirSymlink
			}
			return nil, &fs.PathError{Op: "open", Path: path, Err: why}
		default:
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

// close closes the directory.
func (d *qdir) close() { _ = unix.Close(d.fd) }

// names lists the directory's entries, from its start.
func (d *qdir) names() ([]string, error) {
	if d.listed {
		if _, err := unix.Seek(d.fd, 0, 0); err != nil {
			return nil, &fs.PathError{Op: "seek", Path: d.path, Err: err}
		}
	}
	d.listed = true
	return readDirentNames(d.fd, d.path)
}

// open opens the entry name without following a symlink.
func (d *qdir) open(name string, flag int, perm fs.FileMode) (*os.File, error) {
	for {
		fd, err := unix.Openat(d.fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err == unix.ELOOP {
				err = errSymlink
			}
			return nil, &fs.PathError{Op: "open", Path: d.path + "/" + name, Err: err}
		}
		return os.NewFile(uintptr(fd), d.path+"/"+name), nil
	}
}

// rename renames the entry from to to, both in this directory.
func (d *qdir) rename(from, to string) error {
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return &fs.PathError{Op: "rename", Path: d.path + "/" + from, Err: err}
	}
	return nil
}

// removeIfSame deletes the entry name only if it is still the regular file
// f: whatever else was put at that name since f was opened stays.
func (d *qdir) removeIfSame(name string, f *os.File) {
	var held, named unix.Stat_t
	if unix.Fstat(fdOf(f), &held) != nil || unix.Fstatat(d.fd, name, &named, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	if held.Mode&unix.S_IFMT != unix.S_IFREG || held.Dev != named.Dev || held.Ino != named.Ino {
		return
	}
	_ = unix.Unlinkat(d.fd, name, 0)
}

// modTime returns the entry's modification time if it is a regular file.
func (d *qdir) modTime(name string) (time.Time, bool) {
	var st unix.Stat_t
	if unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return time.Time{}, false
	}
	return time.Unix(st.Mtim.Unix()), true
}

// isRegularFile reports whether the open file is a regular file.
func isRegularFile(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(fdOf(f), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}
