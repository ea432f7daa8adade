package statuspage

import "sync"

// Recent keeps the last finished jobs, up to its size. It is safe for
// concurrent use.
type Recent struct {
	size int

	mu   sync.Mutex
	jobs []Finished // oldest first
}

// NewRecent returns a Recent that keeps size jobs (20 when size <= 0).
func NewRecent(size int) *Recent {
	if size <= 0 {
		size = 20
	}
	return &Recent{size: size}
}

// Add records a finished job.
func (r *Recent) Add(f Finished) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, f)
	if len(r.jobs) > r.size {
		r.jobs = append(r.jobs[:0], r.jobs[len(r.jobs)-r.size:]...)
	}
}

// List returns the jobs kept, newest first.
func (r *Recent) List() []Finished {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Finished, len(r.jobs))
	for i, f := range r.jobs {
		out[len(r.jobs)-1-i] = f
	}
	return out
}

// MeanRan returns the mean run length of the kept jobs that ran (those
// with RanSeconds > 0), and how many they are.
func (r *Recent) MeanRan() (float64, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum float64
	n := 0
	for _, f := range r.jobs {
		if f.RanSeconds > 0 {
			sum += f.RanSeconds
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n
}

// EstimateStart estimates in how many seconds the request at position
// (1 = next) gets the GPU: what is left of the running job's mean length
// (mean - ranSeconds, at least 0; nothing when the GPU is free) plus
// position-1 more jobs of mean length. It reports false when there is no
// mean yet (no job finished).
func EstimateStart(position int, running bool, ranSeconds, mean float64) (float64, bool) {
	if mean <= 0 || position < 1 {
		return 0, false
	}
	est := float64(position-1) * mean
	if running {
		est += max(0, mean-ranSeconds)
	}
	return est, true
}
