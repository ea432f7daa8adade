package simgpu

import (
	"maps"
	"time"
)

// JobRef names one job in an overlap record.
type JobRef struct {
	Service string `json:"service"`
	JobID   string `json:"job_id"`
	PID     int    `json:"pid"`
}

// Overlap records a job that began while another was running.
type Overlap struct {
	// At is when Second began.
	At time.Time `json:"at"`
	// First was running when Second began.
	First JobRef `json:"first"`
	// Second is the job that began.
	Second JobRef `json:"second"`
}

// RunningJob is one job running now.
type RunningJob struct {
	JobRef
	Since time.Time `json:"since"`
}

// Stats is a snapshot of a simulated GPU.
type Stats struct {
	// Jobs counts jobs that began (OOM failures excluded).
	Jobs int64 `json:"jobs"`
	// Overlaps counts (running job, new job) pairs at each Begin.
	Overlaps int64 `json:"overlaps"`
	// OOMs counts jobs refused for lack of memory.
	OOMs int64 `json:"ooms"`
	// BusyNanos is the total time, up to now, with at least one job running.
	BusyNanos int64 `json:"busy_nanos"`
	// OverlapRecords holds the latest overlaps (at most 100), oldest first.
	OverlapRecords []Overlap `json:"overlap_records"`
	// Running lists the jobs running now, of live processes only.
	Running []RunningJob `json:"running"`
	// VRAMTotal, VRAMUsed and VRAMFree are in bytes; used is the resident
	// models plus WorkingVRAM per running job.
	VRAMTotal int64 `json:"vram_total"`
	VRAMUsed  int64 `json:"vram_used"`
	VRAMFree  int64 `json:"vram_free"`
	// Resident maps each service to the bytes of its resident model.
	Resident map[string]int64 `json:"resident"`
}

// Busy returns BusyNanos as a duration.
func (s Stats) Busy() time.Duration { return time.Duration(s.BusyNanos) }

// Stats returns a snapshot of the GPU, after dropping jobs of dead processes.
func (g *GPU) Stats() (Stats, error) {
	var st Stats
	err := g.update(func(s *state, now int64) (bool, error) {
		st = Stats{
			Jobs:           s.Jobs,
			Overlaps:       s.Overlaps,
			OOMs:           s.OOMs,
			BusyNanos:      s.BusyNanos,
			OverlapRecords: append([]Overlap(nil), s.OverlapRecords...),
			VRAMTotal:      g.opts.TotalVRAM,
			VRAMUsed:       s.residentTotal() + g.opts.WorkingVRAM*int64(len(s.Running)),
			Resident:       maps.Clone(s.Resident),
		}
		if s.BusySince != 0 {
			st.BusyNanos += now - s.BusySince
		}
		for _, e := range s.Running {
			st.Running = append(st.Running, RunningJob{
				JobRef: JobRef{Service: e.Service, JobID: e.JobID, PID: e.PID},
				Since:  time.Unix(0, e.StartUnix),
			})
		}
		st.VRAMFree = max(st.VRAMTotal-st.VRAMUsed, 0)
		return false, nil
	})
	return st, err
}
