//go:build unix

package gpulock

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// errWouldBlock is the answer of a non-blocking flock on a held lock.
var errWouldBlock = unix.EWOULDBLOCK

// openNoFollow opens path with O_NOFOLLOW and O_CLOEXEC added to flag, so a
// symlink at the path is an error, never a way to lock another file.
func openNoFollow(path string, flag int, perm fs.FileMode) (*os.File, error) {
	for {
		fd, err := unix.Open(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err == unix.ELOOP {
				err = errSymlink
			}
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// flockFD applies flock(2) to f: exclusive or shared, waiting or not. A
// non-blocking call on a held lock returns errWouldBlock. It retries on
// EINTR, so a waiting call returns only when the lock is held or on a real
// error.
func flockFD(f *os.File, exclusive, wait bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if !wait {
		how |= unix.LOCK_NB
	}
	return retryEINTR(func() error { return unix.Flock(fdOf(f), how) })
}

// readAtStart reads the start of f into buf with one pread(2): for a
// regular file a short read is its end, so the second read that
// (*os.File).ReadAt makes to see EOF is saved.
func readAtStart(f *os.File, buf []byte) int {
	for {
		n, err := unix.Pread(fdOf(f), buf, 0)
		if err == unix.EINTR {
			continue
		}
		return max(n, 0)
	}
}

// unlockFD drops this open file's flock.
func unlockFD(f *os.File) error {
	return retryEINTR(func() error { return unix.Flock(fdOf(f), unix.LOCK_UN) })
}

// fdOf returns the descriptor of f without switching it to blocking mode
// (lock files are regular files, which the runtime poller never holds).
func fdOf(f *os.File) int { return int(f.Fd()) }

func retryEINTR(call func() error) error {
	for {
		err := call()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// pidAlive reports whether pid names a live process on this machine; a
// zombie counts as dead, since its descriptors, and so its locks, are gone.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	if err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	return !isZombie(pid)
}

// readDirNames lists a directory's entries with one open and as few
// getdents calls as it takes.
func readDirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	return readDirentNames(fd, dir)
}

// readDirentNames reads the entries of the open directory fd from its
// current offset.
func readDirentNames(fd int, dir string) ([]string, error) {
	var buf [4096]byte
	var names []string
	for {
		n, err := unix.ReadDirent(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: dir, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// oNoFollow makes an open fail on a symlink.
const oNoFollow = unix.O_NOFOLLOW

// oNonBlock keeps an open of a FIFO from blocking.
const oNonBlock = unix.O_NONBLOCK
