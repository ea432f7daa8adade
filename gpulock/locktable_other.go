//go:build !linux

package gpulock

import "io/fs"

// lockTable is the kernel's table of flocks, which only Linux shows.
type lockTable struct{}

// readLockTable is only available on Linux.
func readLockTable() (lockTable, bool) { return lockTable{}, false }

// holders is never asked where there is no table.
func (lockTable) holders(fs.FileInfo) ([]int, bool) { return nil, false }

// heldInLockTable is only available on Linux.
func heldInLockTable(fs.FileInfo) (held, known bool) { return false, false }
