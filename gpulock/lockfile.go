package gpulock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// lockFilePerm is the mode of lock files that gpulock creates: readable and
// writable by all users, so that services run as different users share them.
const lockFilePerm fs.FileMode = 0o666

// openLockFile opens the lock file at path, creating it if it does not
// exist, and returns it with its file info.
// An existing file is opened without O_CREAT: Linux's fs.protected_regular
// refuses O_CREAT on another user's file in a sticky directory even when its
// mode would allow the open. A file we may not write is opened read-only,
// which is enough for flock (the holder description is then not written).
// Symlinks, directories and other non-regular files are refused with an
// error wrapping ErrNotRegular that says what is there; a file with more
// than one hard link with one wrapping ErrHardLinked (the fstat this needs
// is made anyway).
//
// A read-write open never blocks, even on a FIFO; a read-only one could, so
// it asks for O_NONBLOCK (which flock ignores).
func openLockFile(path string) (*os.File, fs.FileInfo, error) {
	for range 3 {
		f, err := openNoFollow(path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrPermission) {
			f, err = openNoFollow(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		}
		if errors.Is(err, fs.ErrNotExist) {
			f, err = openNoFollow(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, lockFilePerm)
			if errors.Is(err, fs.ErrExist) {
				continue // somebody else made it just now: open theirs
			}
			if err == nil {
				_ = f.Chmod(lockFilePerm) // undo the umask; best effort
			}
		}
		if err != nil {
			return nil, nil, badOpen(path, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		if err := checkLockFileInfo(path, fi); err != nil {
			f.Close()
			return nil, nil, err
		}
		return f, fi, nil
	}
	return nil, nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("file keeps appearing and disappearing; is something deleting lock files?")}
}

// stillNamed reports whether path still names the open file whose info is
// held. A /tmp cleaner that deletes an idle lock file would otherwise let a
// waiter that was blocked on the old file and a newcomer on the new one both
// "hold" the lock.
func stillNamed(held fs.FileInfo, path string) (bool, error) {
	named, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, named), nil
}
