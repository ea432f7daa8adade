//go:build !linux

package gpulock

import "io/fs"

// heldInLockTable is only available on Linux.
func heldInLockTable(fs.FileInfo) (held, known bool) { return false, false }
