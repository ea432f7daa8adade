//go:build !unix

package gpulock

import (
	"io/fs"
	"os"
	"time"
)

// qdir is an open queue directory; there is none where flock does not exist.
type qdir struct{ path string }

func openQueueDir(path string, _ bool) (*qdir, error) {
	return nil, &fs.PathError{Op: "open", Path: path, Err: errUnsupported}
}

func (d *qdir) close() {}

func (d *qdir) names() ([]string, error) { return nil, errUnsupported }

func (d *qdir) open(name string, _ int, _ fs.FileMode) (*os.File, error) {
	return nil, &fs.PathError{Op: "open", Path: d.path + "/" + name, Err: errUnsupported}
}

func (d *qdir) rename(string, string) error { return errUnsupported }

func (d *qdir) removeIfSame(string, *os.File) {}

func (d *qdir) modTime(string) (time.Time, bool) { return time.Time{}, false }

func isRegularFile(*os.File) bool { return false }
