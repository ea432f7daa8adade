package gpulock

import (
	"io/fs"
	"os"
)

// A long-running server that fronts a GPU (a gpulock shim) says so by
// holding a shared flock on <name>.served beside the lock file for as long
// as it runs. Others can tell, without disturbing it, whether the GPU is
// served: gpulock exec warns then, since a web UI wrapped in exec would hold
// the GPU for its whole life and starve the server's jobs. The mark dies
// with its holder, like the lock.

// servedPath is the mark file of the lock.
func (l *Lock) servedPath() string {
	return l.path[:len(l.path)-len(".lock")] + ".served"
}

// Serve marks the lock's resource as served by this process until the
// returned stop is called (or the process ends). It does not take the
// lock. Several processes may serve one GPU.
func (l *Lock) Serve() (stop func() error, err error) {
	path := l.servedPath()
	f, _, err := openLockFile(path) // the same care as the lock file's
	if err != nil {
		return nil, err
	}
	if err := flockFD(f, false, true); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "flock", Path: path, Err: err}
	}
	return f.Close, nil
}

// Served reports whether some process serves the lock's resource now (see
// Serve). It never blocks and takes nothing.
func (l *Lock) Served() bool {
	f, err := openNoFollow(l.servedPath(), os.O_RDONLY|oNonBlock, 0)
	if err != nil {
		return false // never served, or not readable: nothing to say
	}
	defer f.Close()
	err = flockFD(f, true, false)
	if err == nil {
		_ = unlockFD(f)
		return false
	}
	return isWouldBlock(err)
}
