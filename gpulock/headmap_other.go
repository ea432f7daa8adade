//go:build !unix

package gpulock

import "io/fs"

// headMap is never made where there is no mmap: holders use pread and pwrite.
type headMap struct{ mem []byte }

func mapHead(*headMap, string, fs.FileInfo) *headMap { return nil }

func (m *headMap) unmap() {}

func (m *headMap) write([]byte, int64) bool { return false }

func (m *headMap) read([]byte, int64) (int, bool) { return 0, false }
