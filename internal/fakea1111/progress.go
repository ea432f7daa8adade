package fakea1111

import (
	"net/http"
	"time"
)

// progressState is A1111's shared.state as /sdapi/v1/progress shows it.
// Between jobs it keeps the last job's values except JobCount.
type progressState struct {
	Job           string
	JobCount      int // 1+ while a job runs, -1 while a model loads, 0 idle
	JobNo         int
	JobTimestamp  string
	SamplingStep  int
	SamplingSteps int
	Interrupted   bool
	Skipped       bool
	started       time.Time
}

// begin starts a new job's state.
func (p *progressState) begin(job string, count, steps int) {
	now := time.Now()
	*p = progressState{Job: job, JobCount: count, JobTimestamp: timestamp(now), SamplingSteps: steps, started: now}
}

// Progress is the body of GET /sdapi/v1/progress.
type Progress struct {
	Progress     float64       `json:"progress"`
	EtaRelative  float64       `json:"eta_relative"`
	State        ProgressState `json:"state"`
	CurrentImage *string       `json:"current_image"`
	TextInfo     *string       `json:"textinfo"`
	CurrentTask  *string       `json:"current_task"`
}

// ProgressState is Progress.state; busy is JobCount != 0.
type ProgressState struct {
	Skipped            bool   `json:"skipped"`
	Interrupted        bool   `json:"interrupted"`
	StoppingGeneration bool   `json:"stopping_generation"`
	Job                string `json:"job"`
	JobCount           int    `json:"job_count"`
	JobTimestamp       string `json:"job_timestamp"`
	JobNo              int    `json:"job_no"`
	SamplingStep       int    `json:"sampling_step"`
	SamplingSteps      int    `json:"sampling_steps"`
}

// Progress returns what GET /sdapi/v1/progress would answer now.
func (s *Server) Progress() Progress {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	out := Progress{State: ProgressState{
		Skipped: st.Skipped, Interrupted: st.Interrupted, Job: st.Job, JobCount: st.JobCount,
		JobTimestamp: st.JobTimestamp, JobNo: st.JobNo, SamplingStep: st.SamplingStep, SamplingSteps: st.SamplingSteps,
	}}
	if st.JobCount == 0 {
		return out
	}
	// As A1111's progressapi computes it.
	progress := 0.01
	if st.JobCount > 0 {
		progress += float64(st.JobNo) / float64(st.JobCount)
		if st.SamplingSteps > 0 {
			progress += float64(st.SamplingStep) / float64(st.SamplingSteps) / float64(st.JobCount)
		}
	}
	progress = min(progress, 1)
	elapsed := time.Since(st.started).Seconds()
	out.Progress = progress
	out.EtaRelative = elapsed/progress - elapsed
	return out
}

// handleProgress answers GET /sdapi/v1/progress.
func (s *Server) handleProgress(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Progress())
}
