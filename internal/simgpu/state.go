package simgpu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// maxOverlapRecords bounds the overlap records kept in the state file.
const maxOverlapRecords = 100

// runEntry is one running job in the state file.
type runEntry struct {
	ID        int64  `json:"id"`
	Service   string `json:"service"`
	JobID     string `json:"job_id"`
	PID       int    `json:"pid"`
	StartUnix int64  `json:"start_unix_nano"`
}

// state is the whole JSON state file of one simulated GPU.
type state struct {
	NextID    int64            `json:"next_id"`
	Running   []runEntry       `json:"running"`
	Resident  map[string]int64 `json:"resident"`
	Jobs      int64            `json:"jobs"`
	Overlaps  int64            `json:"overlaps"`
	OOMs      int64            `json:"ooms"`
	BusyNanos int64            `json:"busy_nanos"`
	// BusySince is the unix nano time Running last became non-empty; 0 while idle.
	BusySince      int64     `json:"busy_since"`
	OverlapRecords []Overlap `json:"overlap_records"`
}

// residentTotal returns the bytes of all resident models.
func (s *state) residentTotal() int64 {
	var n int64
	for _, b := range s.Resident {
		n += b
	}
	return n
}

// markIdleIfEmpty closes the busy period when no job runs any more.
func (s *state) markIdleIfEmpty(now int64) {
	if len(s.Running) == 0 && s.BusySince != 0 {
		s.BusyNanos += now - s.BusySince
		s.BusySince = 0
	}
}

// pruneDead drops running entries whose process is gone and reports whether
// it changed anything.
func (s *state) pruneDead(now int64) bool {
	kept := s.Running[:0]
	for _, e := range s.Running {
		if processAlive(e.PID) {
			kept = append(kept, e)
		}
	}
	changed := len(kept) != len(s.Running)
	s.Running = kept
	if changed {
		s.markIdleIfEmpty(now)
	}
	return changed
}

// readState loads the state file at path; a missing file is an empty state.
func readState(path string) (*state, error) {
	s := &state{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("simgpu: read state: %w", err)
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("simgpu: parse state %s: %w", path, err)
		}
	}
	if s.Resident == nil {
		s.Resident = map[string]int64{}
	}
	return s, nil
}

// writeState replaces the state file at path atomically.
func writeState(path string, s *state) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("simgpu: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("simgpu: write state: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("simgpu: write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("simgpu: write state: %w", err)
	}
	return nil
}
