//go:build !unix

package gpulock

import (
	"errors"
	"io/fs"
	"os"
)

// errWouldBlock is never returned where flock does not exist.
var errWouldBlock = errors.New("gpulock: would block")

func openNoFollow(path string, _ int, _ fs.FileMode) (*os.File, error) {
	return nil, &fs.PathError{Op: "open", Path: path, Err: errUnsupported}
}

func flockFD(*os.File, bool, bool) error { return errUnsupported }

func unlockFD(*os.File) error { return errUnsupported }

func pidAlive(int) bool { return false }

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

const (
	oNoFollow = 0
	oNonBlock = 0
)

// readAtStart reads the start of f into buf.
func readAtStart(f *os.File, buf []byte) int {
	n, _ := f.ReadAt(buf, 0)
	return n
}
