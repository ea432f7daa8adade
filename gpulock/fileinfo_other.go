//go:build !unix

package gpulock

import "io/fs"

// linkCount is 1 where the system does not count hard links.
func linkCount(fs.FileInfo) uint64 { return 1 }

// fileUID is unknown where files have no numeric owner.
func fileUID(fs.FileInfo) (int, bool) { return 0, false }
