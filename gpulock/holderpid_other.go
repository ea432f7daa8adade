//go:build !linux

package gpulock

import (
	"errors"
	"fmt"
)

// HolderPIDs needs Linux's /proc/locks; elsewhere it returns an error
// wrapping errors.ErrUnsupported.
func HolderPIDs(path string) ([]int, error) {
	return nil, fmt.Errorf("gpulock: reading the holder of %s: %w", path, errors.ErrUnsupported)
}

// AncestorOf needs Linux's /proc; elsewhere it reports false.
func AncestorOf(pid int) bool { return false }
