package simgpu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// GPU is a handle on one simulated GPU whose state lives in a directory.
// Handles in any number of goroutines and processes may share one GPU; each
// operation reads and writes the state file under the GPU's mutex.
type GPU struct {
	index     int
	opts      Options
	statePath string
	journal   string
	mutex     fileMutex
	now       func() time.Time
}

// Open returns a handle on GPU gpu whose state lives in dir, creating dir if
// needed. It does not change the state.
func Open(dir string, gpu int, opts Options) (*GPU, error) {
	if gpu < 0 {
		return nil, fmt.Errorf("simgpu: negative gpu index %d", gpu)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("simgpu: open: %w", err)
	}
	return &GPU{
		index:     gpu,
		opts:      opts.withDefaults(),
		statePath: filepath.Join(dir, fmt.Sprintf("simgpu%d.json", gpu)),
		journal:   filepath.Join(dir, fmt.Sprintf("simgpu%d.journal", gpu)),
		mutex:     fileMutex{path: filepath.Join(dir, fmt.Sprintf("simgpu%d.mutex", gpu))},
		now:       time.Now,
	}, nil
}

// Index returns the GPU's number.
func (g *GPU) Index() int { return g.index }

// Options returns the sizes this handle checks memory with.
func (g *GPU) Options() Options { return g.opts }

// update runs fn on the current state under the mutex and writes the state
// back if fn reports a change (dead processes pruned count as a change).
func (g *GPU) update(fn func(s *state, now int64) (changed bool, err error)) error {
	unlock, err := g.mutex.lock()
	if err != nil {
		return err
	}
	defer unlock()
	s, err := readState(g.statePath)
	if err != nil {
		return err
	}
	now := g.now().UnixNano()
	changed := s.pruneDead(now)
	fnChanged, fnErr := fn(s, now)
	if changed || fnChanged {
		if err := writeState(g.statePath, s); err != nil {
			return err
		}
	}
	return fnErr
}

// Begin marks a job of service running and returns its handle; call End
// when the job's GPU work stops. modelBytes is the size of the model the
// job needs resident for service (it stays resident after End until Free);
// zero keeps whatever service has resident.
//
// If another job is running on the GPU, an overlap is counted and
// recorded, and the job still runs. If the resident models plus
// WorkingVRAM for every running job (this one included) exceed TotalVRAM,
// Begin counts an OOM, leaves the state otherwise unchanged and returns an
// error wrapping ErrOutOfMemory whose text reads like CUDA's.
func (g *GPU) Begin(service, jobID string, modelBytes int64) (*Job, error) {
	var job *Job
	err := g.update(func(s *state, now int64) (bool, error) {
		resident := s.residentTotal()
		if modelBytes > 0 {
			resident += modelBytes - s.Resident[service]
		}
		working := g.opts.WorkingVRAM * int64(len(s.Running)+1)
		if resident+working > g.opts.TotalVRAM {
			s.OOMs++
			used := s.residentTotal() + g.opts.WorkingVRAM*int64(len(s.Running))
			need := resident + working - used
			return true, fmt.Errorf("simgpu: begin %s/%s: %w", service, jobID, &oomError{
				gpu: g.index, need: need, total: g.opts.TotalVRAM, used: used,
				free: max(g.opts.TotalVRAM-used, 0),
			})
		}
		if modelBytes > 0 {
			s.Resident[service] = modelBytes
		}
		s.NextID++
		e := runEntry{ID: s.NextID, Service: service, JobID: jobID, PID: os.Getpid(), StartUnix: now}
		for _, other := range s.Running {
			s.Overlaps++
			s.OverlapRecords = append(s.OverlapRecords, Overlap{
				At:     time.Unix(0, now),
				First:  JobRef{Service: other.Service, JobID: other.JobID, PID: other.PID},
				Second: JobRef{Service: service, JobID: jobID, PID: e.PID},
			})
		}
		if n := len(s.OverlapRecords); n > maxOverlapRecords {
			s.OverlapRecords = append([]Overlap(nil), s.OverlapRecords[n-maxOverlapRecords:]...)
		}
		if len(s.Running) == 0 {
			s.BusySince = now
		}
		s.Running = append(s.Running, e)
		s.Jobs++
		if err := appendJournal(g.journal, JobRef{Service: service, JobID: jobID, PID: e.PID}); err != nil {
			return false, err
		}
		job = &Job{gpu: g, id: e.ID, Service: service, JobID: jobID}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return job, nil
}

// Free unloads service's resident model. It does not touch running jobs.
func (g *GPU) Free(service string) error {
	return g.update(func(s *state, _ int64) (bool, error) {
		if _, ok := s.Resident[service]; !ok {
			return false, nil
		}
		delete(s.Resident, service)
		return true, nil
	})
}

// Reset empties the GPU's state: no jobs, no models, all counters zero.
// Meant for tests; jobs still holding handles end without effect.
func (g *GPU) Reset() error {
	return g.update(func(s *state, _ int64) (bool, error) {
		*s = state{NextID: s.NextID, Resident: map[string]int64{}}
		if err := os.Remove(g.journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		return true, nil
	})
}
