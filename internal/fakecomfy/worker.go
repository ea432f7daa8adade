package fakecomfy

import (
	"fmt"
	"time"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// Outcomes of one prompt.
const (
	outcomeSuccess = iota
	outcomeError
	outcomeInterrupted
)

// work is the worker goroutine: it applies /free when idle and runs queued
// prompts one at a time until Close.
func (s *Server) work() {
	defer close(s.workerDone)
	for {
		s.applyFree()
		if it := s.take(); it != nil {
			s.execute(it)
			continue
		}
		select {
		case <-s.wake:
		case <-s.quit:
			return
		}
	}
}

// take moves the next pending prompt to running and says so to every
// socket; it returns nil when nothing is pending or the server is closing.
func (s *Server) take() *queueItem {
	select {
	case <-s.quit:
		return nil
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.popLocked()
	if it == nil {
		return nil
	}
	s.running = it
	s.counters.Run++
	s.broadcastStatusLocked()
	return it
}

// applyFree unloads the model if /free asked for it.
func (s *Server) applyFree() {
	s.mu.Lock()
	free := s.freePending
	s.freePending = false
	if free {
		s.counters.Frees++
		s.loadedModel = ""
	}
	s.mu.Unlock()
	if free && s.cfg.GPU != nil {
		_ = s.cfg.GPU.Free(s.cfg.Service)
	}
}

// execute runs one prompt: its nodes in order with their events, the GPU
// job around the sampling, then history, status and the final executing.
func (s *Server) execute(it *queueItem) {
	s.mu.Lock()
	s.emitLocked(it, "execution_start", map[string]any{"prompt_id": it.promptID, "timestamp": nowMillis()})
	s.emitLocked(it, "execution_cached", map[string]any{"nodes": []string{}, "prompt_id": it.promptID, "timestamp": nowMillis()})
	s.mu.Unlock()

	var job *simgpu.Job
	outcome := outcomeSuccess
	var failed string // node id that failed or was interrupted
	var failure error
	executed := []string{}
	outputs := map[string]any{}
	for _, id := range executionOrder(it.graph, it.outputs) {
		if s.stopped(it) {
			outcome, failed = outcomeInterrupted, id
			break
		}
		node := it.graph[id]
		s.mu.Lock()
		it.node = id
		s.emitLocked(it, "executing", map[string]any{"node": id, "display_node": id, "prompt_id": it.promptID})
		s.mu.Unlock()
		switch node.ClassType {
		case "CheckpointLoaderSimple":
			if !s.load(it, node) {
				outcome, failed = outcomeInterrupted, id
			}
		case "KSampler":
			if job == nil && s.cfg.GPU != nil {
				j, err := s.cfg.GPU.Begin(s.cfg.Service, it.promptID, s.cfg.ModelBytes)
				if err != nil {
					outcome, failed, failure = outcomeError, id, err
					break
				}
				job = j
			}
			if !s.sample(it, id, node.steps()) {
				outcome, failed = outcomeInterrupted, id
			}
		case "SaveImage":
			out := map[string]any{"images": s.newImages(node)}
			outputs[id] = out
			s.mu.Lock()
			s.emitLocked(it, "executed", map[string]any{"node": id, "display_node": id, "output": out, "prompt_id": it.promptID})
			s.mu.Unlock()
		}
		if outcome != outcomeSuccess {
			break
		}
		executed = append(executed, id)
	}
	if job != nil {
		_ = job.End()
	}
	s.finish(it, outcome, failed, failure, executed, outputs)
}

// sample runs steps sampling steps of node id, sending progress after each;
// it returns false if the prompt was interrupted (or the server closed).
func (s *Server) sample(it *queueItem, id string, steps int) bool {
	timer := time.NewTimer(s.cfg.StepDuration)
	defer timer.Stop()
	for step := 1; step <= steps; step++ {
		if step > 1 {
			timer.Reset(s.cfg.StepDuration)
		}
		select {
		case <-timer.C:
		case <-it.interrupt:
			return false
		case <-s.quit:
			return false
		}
		s.mu.Lock()
		s.emitLocked(it, "progress", map[string]any{"value": step, "max": steps, "prompt_id": it.promptID, "node": id})
		s.sendPreviewLocked(it)
		s.mu.Unlock()
	}
	return true
}

// load charges Config.ModelLoad when a checkpoint loader names another model
// than the one loaded; it returns false if the prompt was interrupted (or
// the server closed) meanwhile.
func (s *Server) load(it *queueItem, node Node) bool {
	name, _ := node.Inputs["ckpt_name"].(string)
	s.mu.Lock()
	same := name == s.loadedModel
	s.mu.Unlock()
	if s.cfg.ModelLoad <= 0 || same {
		return true
	}
	timer := time.NewTimer(s.cfg.ModelLoad)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-it.interrupt:
		return false
	case <-s.quit:
		return false
	}
	s.mu.Lock()
	s.loadedModel = name
	s.counters.ModelLoads++
	s.mu.Unlock()
	return true
}

// stopped reports whether the prompt was interrupted or the server closed.
func (s *Server) stopped(it *queueItem) bool {
	select {
	case <-it.interrupt:
		return true
	case <-s.quit:
		return true
	default:
		return false
	}
}

// newImages names the images a SaveImage node writes.
func (s *Server) newImages(node Node) []map[string]any {
	prefix, _ := node.Inputs["filename_prefix"].(string)
	if prefix == "" {
		prefix = "ComfyUI"
	}
	s.mu.Lock()
	s.images++
	n := s.images
	s.mu.Unlock()
	return []map[string]any{{"filename": fmt.Sprintf("%s_%05d_.png", prefix, n), "subfolder": "", "type": "output"}}
}

// finish sends the prompt's last event, stores its history, clears
// running, broadcasts the status and sends executing with node null, in
// ComfyUI's order.
func (s *Server) finish(it *queueItem, outcome int, failed string, failure error, executed []string, outputs map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := map[string]any{"prompt_id": it.promptID, "timestamp": nowMillis()}
	switch outcome {
	case outcomeSuccess:
		s.counters.Succeeded++
		s.emitLocked(it, "execution_success", base)
	case outcomeError:
		s.counters.Failed++
		base["node_id"], base["node_type"], base["executed"] = failed, it.graph[failed].ClassType, executed
		base["exception_message"] = simgpu.CUDAMessage(failure)
		base["exception_type"] = "torch.OutOfMemoryError"
		base["traceback"] = []string{"  File \"execution.py\", line 1, in execute\n"}
		base["current_inputs"], base["current_outputs"] = map[string]any{}, map[string]any{}
		s.emitLocked(it, "execution_error", base)
	case outcomeInterrupted:
		s.counters.Interrupted++
		base["node_id"], base["node_type"], base["executed"] = failed, it.graph[failed].ClassType, executed
		s.emitLocked(it, "execution_interrupted", base)
	}
	s.addHistoryLocked(it, outcome == outcomeSuccess, outputs)
	s.running = nil
	it.node = ""
	s.broadcastStatusLocked()
	s.sendLocked(it.clientID, "executing", map[string]any{"node": nil, "prompt_id": it.promptID})
}
