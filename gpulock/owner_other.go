//go:build !linux

package gpulock

import "io/fs"

// readProcess needs Linux's /proc.
func readProcess(int) (Process, bool) { return Process{}, false }

// processesWithOpen needs Linux's /proc.
func processesWithOpen(fs.FileInfo) []Process { return nil }
