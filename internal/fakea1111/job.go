package fakea1111

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// Why a job's wait ended early.
type stopReason int

const (
	notStopped stopReason = iota
	stoppedInterrupt
	stoppedBroken
)

// runningJob is the job holding the queue lock.
type runningJob struct {
	interrupt chan struct{}
	iOnce     sync.Once
	broken    chan struct{}
	bOnce     sync.Once
}

// newRunningJob returns a job that is neither interrupted nor broken.
func newRunningJob() *runningJob {
	return &runningJob{interrupt: make(chan struct{}), broken: make(chan struct{})}
}

// stop makes the job stop at its next step and answer as interrupted.
func (rj *runningJob) stop() { rj.iOnce.Do(func() { close(rj.interrupt) }) }

// breakJob makes the job fail at its next step, as unloading weights does.
func (rj *runningJob) breakJob() { rj.bOnce.Do(func() { close(rj.broken) }) }

// jobSpec says what a job does.
type jobSpec struct {
	name       string // state.job, e.g. "scripts_txt2img"
	steps      int    // sampling steps per iteration
	iterations int    // job_count
	usesModel  bool   // needs the checkpoint (generations)
	checkpoint string // the title override_settings.sd_model_checkpoint names ("": the loaded one)
	taskID     string // the request's force_task_id, if any: the job's id on the simulated GPU
	// started, if not nil, runs under s.mu once the job holds the queue lock.
	started func()
	// done, if not nil, gets the result in the job goroutine.
	done func(jobResult)
}

// jobResult is how a job ended: status 200 (interrupted or not) or an error.
type jobResult struct {
	interrupted bool
	status      int
	err         *apiError
}

// start runs spec in a job goroutine owned by the server and returns the
// channel its result arrives on (buffered: nobody has to read it).
func (s *Server) start(spec jobSpec) (<-chan jobResult, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.jobs.Add(1)
	s.mu.Unlock()
	ch := make(chan jobResult, 1)
	go func() {
		defer s.jobs.Done()
		res := s.run(spec)
		if spec.done != nil {
			spec.done(res)
		}
		ch <- res
	}()
	return ch, nil
}

// run takes the queue lock (in arrival order) and does the job's GPU work.
func (s *Server) run(spec jobSpec) jobResult {
	s.queue.lock()
	defer s.queue.unlock()

	rj := newRunningJob()
	s.mu.Lock()
	s.current = rj
	s.counters.Jobs++
	s.nextID++
	id := spec.name + "-" + strconv.FormatInt(s.nextID, 10)
	if spec.taskID != "" {
		id = spec.taskID
	}
	s.state.begin(spec.name, spec.iterations, spec.steps)
	if spec.started != nil {
		spec.started()
	}
	needLoad := spec.usesModel && (!s.loaded || (spec.checkpoint != "" && spec.checkpoint != s.checkpoint))
	s.mu.Unlock()

	res := s.runLocked(rj, spec, id, needLoad)

	s.mu.Lock()
	s.current = nil
	s.state.JobCount = 0
	switch {
	case res.err != nil:
		s.counters.Failed++
	case res.interrupted:
		s.counters.Interrupted++
	default:
		s.counters.Succeeded++
	}
	s.mu.Unlock()
	return res
}

// runLocked does the work of a job holding the queue lock.
func (s *Server) runLocked(rj *runningJob, spec jobSpec, id string, needLoad bool) jobResult {
	if needLoad {
		if r := s.wait(rj, s.cfg.ModelLoadDuration); r != notStopped {
			return stopResult(r)
		}
		s.mu.Lock()
		s.loaded = true
		if spec.checkpoint != "" {
			s.checkpoint = spec.checkpoint
		}
		s.counters.ModelLoads++
		s.mu.Unlock()
	}
	if s.cfg.GPU != nil {
		var model int64
		if spec.usesModel {
			model = s.cfg.ModelBytes
		}
		job, err := s.cfg.GPU.Begin(s.cfg.Service, id, model)
		if err != nil {
			return jobResult{status: http.StatusInternalServerError, err: &apiError{Error: "OutOfMemoryError", Errors: simgpu.CUDAMessage(err)}}
		}
		defer func() { _ = job.End() }()
	}
	for it := range spec.iterations {
		for step := 1; step <= spec.steps; step++ {
			if r := s.wait(rj, s.cfg.StepDuration); r != notStopped {
				return stopResult(r)
			}
			s.mu.Lock()
			s.state.JobNo, s.state.SamplingStep = it, step
			s.mu.Unlock()
		}
	}
	return jobResult{status: http.StatusOK}
}

// stopResult is the result of a job stopped early.
func stopResult(r stopReason) jobResult {
	if r == stoppedBroken {
		return jobResult{status: http.StatusInternalServerError, err: &apiError{Error: "RuntimeError",
			Errors: "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"}}
	}
	return jobResult{status: http.StatusOK, interrupted: true}
}

// await starts spec and waits for its result; if the client leaves first
// it counts the request abandoned and returns false (the job runs on).
func (s *Server) await(w http.ResponseWriter, r *http.Request, spec jobSpec) (jobResult, bool) {
	ch, err := s.start(spec)
	if err != nil {
		writeAPIError(w, http.StatusServiceUnavailable, "RuntimeError", "", err.Error())
		return jobResult{}, false
	}
	select {
	case res := <-ch:
		if res.err != nil {
			writeJSON(w, res.status, res.err)
			return res, false
		}
		return res, true
	case <-r.Context().Done():
		s.mu.Lock()
		s.counters.Abandoned++
		s.mu.Unlock()
		return jobResult{}, false
	}
}

// StartLocalJob starts a generation of steps steps with no HTTP request,
// as an extension such as agent-scheduler does: it waits for the queue
// lock like any job and shows in /sdapi/v1/progress. The returned channel
// receives nil when the job ends (interrupted included), or its error
// (ErrClosed after Close), and is never closed.
func (s *Server) StartLocalJob(steps int) <-chan error {
	out := make(chan error, 1)
	_, err := s.start(jobSpec{name: "agent_scheduler", steps: max(steps, 1), iterations: 1, usesModel: true, done: func(res jobResult) {
		if res.err != nil {
			out <- fmt.Errorf("fakea1111: local job: %s: %s", res.err.Error, res.err.Errors)
			return
		}
		out <- nil
	}})
	if err != nil {
		out <- err
	}
	return out
}

// timestamp formats t as A1111's job_timestamp.
func timestamp(t time.Time) string { return t.Format("20060102150405") }
