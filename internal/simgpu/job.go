package simgpu

import "sync"

// Job is one running job on a simulated GPU, returned by Begin.
type Job struct {
	// Service is the service the job belongs to.
	Service string
	// JobID is the caller's name for the job.
	JobID string

	gpu  *GPU
	id   int64
	once sync.Once
	err  error
}

// End marks the job no longer running. It is safe to call more than once
// and from several goroutines; later calls return the first call's result.
func (j *Job) End() error {
	j.once.Do(func() {
		j.err = j.gpu.update(func(s *state, now int64) (bool, error) {
			for i, e := range s.Running {
				if e.ID == j.id {
					s.Running = append(s.Running[:i], s.Running[i+1:]...)
					s.markIdleIfEmpty(now)
					return true, nil
				}
			}
			return false, nil
		})
	})
	return j.err
}
