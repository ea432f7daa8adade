package fakea1111

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The browser UI's side of the fake: gradio 3.41's queue websocket at
// /queue/join, POST /run/predict (and /api/predict) for --no-gradio-queue,
// and the UI's task routes /internal/progress and /internal/pending-tasks.
//
// A UI job is a gradio call whose data[0] is a string "task(...)", which is
// what A1111's wrap_gradio_gpu_call keys on: it runs a generation through
// the queue lock like an API job, named by that task id on the simulated
// GPU. Its steps are the last element of data when that is a whole number
// of at least 1 (see UIJobData), otherwise Config.DefaultSteps. Any other
// call answers at once. As in A1111, a client that leaves cancels nothing.

// Timing of gradio's queue handshake.
const (
	// gradioHashTimeout is how long gradio waits for the session hash.
	gradioHashTimeout = 5 * time.Second
	// gradioWriteTimeout bounds each frame written to a client.
	gradioWriteTimeout = 5 * time.Second
	// gradioReadLimit is the largest frame accepted (the websockets library's 16 MiB default).
	gradioReadLimit = 16 << 20
	// finishedTasksKept is how many finished task ids /internal/progress remembers.
	finishedTasksKept = 16
)

// taskBook is A1111's modules/progress: the UI's task ids, queued (in
// order), running and recently finished, and gradio's counters. It is
// guarded by Server.mu.
type taskBook struct {
	pending  []string
	current  string
	finished []string
	stats    GradioStats
	total    time.Duration // durations of finished UI jobs, for average_duration
	count    int64         // finished UI jobs
}

// GradioStats counts what the fake's gradio queue did.
type GradioStats struct {
	// Joins counts /queue/join websockets that sent their session hash.
	Joins int64
	// Events counts data frames received on /queue/join.
	Events int64
	// LeftBeforeData counts sockets that closed after send_data without
	// sending their data frame.
	LeftBeforeData int64
	// DataTimeouts counts sockets that sent no data frame within
	// GradioDataTimeout: they got process_completed with an error.
	DataTimeouts int64
	// ClientGone counts sockets whose client closed (or vanished) before
	// process_completed was sent, counted as soon as the fake notices.
	ClientGone int64
	// Predicts counts POST /run/predict and /api/predict calls.
	Predicts int64
	// UIJobs counts task(...) jobs started, over both routes.
	UIJobs int64
}

// GradioStats returns a snapshot of the gradio counters.
func (s *Server) GradioStats() GradioStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tasks.stats
}

// UIJobData returns the data of a UI generation call as the fake reads it:
// the task id first (A1111's UI sends "task(" + random id + ")"), a prompt,
// a negative prompt, styles, and the steps last.
func UIJobData(taskID string, steps int) []any {
	return []any{taskID, "a photo of a cat", "", []string{}, steps}
}

// gradioRoutes adds the gradio routes to mux.
func (s *Server) gradioRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /queue/join", s.handleQueueJoin)
	mux.HandleFunc("POST /run/predict", s.handlePredict)
	mux.HandleFunc("POST /api/predict", s.handlePredict)
	mux.HandleFunc("POST /internal/progress", s.handleInternalProgress)
	mux.HandleFunc("GET /internal/pending-tasks", s.handlePendingTasks)
}

// predictBody is gradio's PredictBody: a data frame, or a /run/predict body.
type predictBody struct {
	Data        []json.RawMessage `json:"data"`
	FnIndex     *int              `json:"fn_index"`
	SessionHash string            `json:"session_hash"`
	EventData   json.RawMessage   `json:"event_data"`
}

// predictOutput is a call's answer: the body of /run/predict, and the
// output of process_completed.
type predictOutput struct {
	Data            []any   `json:"data"`
	IsGenerating    bool    `json:"is_generating"`
	Duration        float64 `json:"duration"`
	AverageDuration float64 `json:"average_duration"`
}

// uiTask returns the task id of a call, if data[0] is "task(...)".
func uiTask(data []json.RawMessage) (string, bool) {
	if len(data) == 0 {
		return "", false
	}
	var id string
	if json.Unmarshal(data[0], &id) != nil || len(id) < len("task()") || !strings.HasPrefix(id, "task(") || !strings.HasSuffix(id, ")") {
		return "", false
	}
	return id, true
}

// uiSteps returns the steps of a UI job: the last element of data when it
// is a whole number of at least 1, or def.
func uiSteps(data []json.RawMessage, def int) int {
	if len(data) < 2 {
		return def
	}
	var n float64
	if json.Unmarshal(data[len(data)-1], &n) != nil || n < 1 || n != float64(int(n)) {
		return def
	}
	return int(n)
}

// startUIJob queues a UI job under the queue lock, as wrap_gradio_gpu_call
// does: the task is pending until the lock is held, current while it runs,
// finished after.
func (s *Server) startUIJob(id string, steps int) (<-chan jobResult, error) {
	s.mu.Lock()
	s.tasks.pending = append(s.tasks.pending, id)
	s.tasks.stats.UIJobs++
	s.mu.Unlock()
	begun := time.Now()
	ch, err := s.start(jobSpec{name: "scripts_txt2img", steps: steps, iterations: 1, usesModel: true, taskID: id,
		started: func() { // under s.mu
			s.tasks.pending = slices.DeleteFunc(s.tasks.pending, func(p string) bool { return p == id })
			s.tasks.current = id
		},
		done: func(jobResult) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.tasks.current == id {
				s.tasks.current = ""
			}
			s.tasks.finished = append(s.tasks.finished, id)
			if len(s.tasks.finished) > finishedTasksKept {
				s.tasks.finished = s.tasks.finished[1:]
			}
			s.tasks.total += time.Since(begun)
			s.tasks.count++
		}})
	if err != nil {
		s.mu.Lock()
		s.tasks.pending = slices.DeleteFunc(s.tasks.pending, func(p string) bool { return p == id })
		s.mu.Unlock()
	}
	return ch, err
}

// uiOutput is the answer to a finished UI job: a gallery, the generation
// info, and the HTML info and log, as txt2img's outputs.
func (s *Server) uiOutput(id string, res jobResult, took time.Duration) predictOutput {
	info := "<p>" + id + "</p>"
	switch {
	case res.err != nil:
		info = "<div class='error'>" + res.err.Error + ": " + res.err.Errors + "</div>"
	case res.interrupted:
		info = "<p>" + id + " (interrupted)</p>"
	}
	gallery := []any{map[string]any{"name": "/tmp/gradio/" + strings.Trim(id[len("task("):], ")") + ".png", "data": nil, "is_file": true}}
	return predictOutput{Data: []any{gallery, `{"prompt": ""}`, info, ""}, Duration: took.Seconds(), AverageDuration: s.averageUIDuration()}
}

// averageUIDuration returns the average duration of finished UI jobs, in seconds.
func (s *Server) averageUIDuration() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tasks.count == 0 {
		return 0
	}
	return s.tasks.total.Seconds() / float64(s.tasks.count)
}

// predict runs one call: a UI job's result arrives when the job ends, any
// other call's at once.
func (s *Server) predict(body predictBody) (<-chan predictOutput, error) {
	out := make(chan predictOutput, 1)
	id, ok := uiTask(body.Data)
	if !ok {
		out <- predictOutput{Data: []any{}}
		return out, nil
	}
	begun := time.Now()
	ch, err := s.startUIJob(id, uiSteps(body.Data, s.cfg.DefaultSteps))
	if err != nil {
		return nil, err
	}
	go func() { out <- s.uiOutput(id, <-ch, time.Since(begun)) }() // ch always gets the job's result
	return out, nil
}

// handlePredict answers POST /run/predict and /api/predict, held open for
// the job; a client that leaves is counted and its job runs on.
func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) {
	var body predictBody
	if !decodeBody(w, r, &body) {
		return
	}
	s.mu.Lock()
	s.tasks.stats.Predicts++
	s.mu.Unlock()
	ch, err := s.predict(body)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
		return
	}
	select {
	case out := <-ch:
		writeJSON(w, http.StatusOK, out)
	case <-r.Context().Done():
		s.mu.Lock()
		s.counters.Abandoned++
		s.mu.Unlock()
	}
}

// wsRead is one frame read from a websocket, or the error that ended it.
type wsRead struct {
	data []byte
	err  error
}

// handleQueueJoin serves gradio 3.41's queue websocket: send_hash, the
// client's {fn_index, session_hash}, estimation, send_data, the client's
// data frame (within GradioDataTimeout), process_starts, then
// process_completed once the call is done, and a normal close.
func (s *Server) handleQueueJoin(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	conn.SetReadLimit(gradioReadLimit)

	// One reader for the socket's life, so that a client's close is seen
	// and answered whatever the handler waits for.
	frames := make(chan wsRead, 1)
	done := make(chan struct{})
	readerDone := make(chan struct{})
	var completing atomic.Bool // the handler ends the socket: the close that follows is ours
	defer func() { completing.Store(true); close(done); conn.CloseNow(); <-readerDone }()
	go func() {
		defer close(readerDone)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil && !completing.Load() {
				s.mu.Lock()
				s.tasks.stats.ClientGone++
				s.mu.Unlock()
			}
			select {
			case frames <- wsRead{data, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	next := func(timeout time.Duration) (wsRead, bool) {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case f := <-frames:
			return f, true
		case <-t.C:
			return wsRead{}, false
		}
	}

	if s.sendFrame(conn, map[string]any{"msg": "send_hash"}) != nil {
		return
	}
	f, ok := next(gradioHashTimeout)
	var hash predictBody
	if !ok || f.err != nil || json.Unmarshal(f.data, &hash) != nil || hash.FnIndex == nil {
		return
	}
	s.mu.Lock()
	s.tasks.stats.Joins++
	queued := len(s.tasks.pending)
	s.mu.Unlock()
	// The queue runs 64 calls at once (A1111's demo.queue(64)): rank 0.
	_ = s.sendFrame(conn, map[string]any{"msg": "estimation", "rank": 0, "queue_size": queued + 1,
		"avg_event_process_time": s.averageUIDuration(), "avg_event_concurrent_process_time": nil, "rank_eta": nil, "queue_eta": 0})
	if s.sendFrame(conn, map[string]any{"msg": "send_data"}) != nil {
		return
	}
	f, ok = next(s.cfg.GradioDataTimeout)
	if !ok {
		completing.Store(true)
		s.mu.Lock()
		s.tasks.stats.DataTimeouts++
		s.mu.Unlock()
		_ = s.sendFrame(conn, map[string]any{"msg": "process_completed", "output": map[string]any{"error": "Time out uploading data to server"}, "success": false})
		_ = conn.Close(websocket.StatusNormalClosure, "")
		return
	}
	var body predictBody
	if f.err != nil {
		s.mu.Lock()
		s.tasks.stats.LeftBeforeData++
		s.mu.Unlock()
		return
	}
	if json.Unmarshal(f.data, &body) != nil {
		_ = s.sendFrame(conn, map[string]any{"msg": "process_completed", "output": map[string]any{"error": "bad data frame"}, "success": false})
		_ = conn.Close(websocket.StatusNormalClosure, "")
		return
	}
	s.mu.Lock()
	s.tasks.stats.Events++
	s.mu.Unlock()
	if s.sendFrame(conn, map[string]any{"msg": "process_starts"}) != nil {
		return // gradio drops an event whose client is gone before it starts
	}
	ch, err := s.predict(body)
	if err != nil {
		_ = s.sendFrame(conn, map[string]any{"msg": "process_completed", "output": map[string]any{"error": err.Error()}, "success": false})
		_ = conn.Close(websocket.StatusNormalClosure, "")
		return
	}
	out := <-ch // the job runs to its end even if the client has left
	completing.Store(true)
	if s.sendFrame(conn, map[string]any{"msg": "process_completed", "output": out, "success": true}) != nil {
		s.mu.Lock()
		s.counters.Abandoned++
		s.mu.Unlock()
		return
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
}

// sendFrame writes v as one JSON text frame.
func (s *Server) sendFrame(conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), gradioWriteTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, b)
}

// internalProgress is the body of POST /internal/progress.
type internalProgress struct {
	Active        bool     `json:"active"`
	Queued        bool     `json:"queued"`
	Completed     bool     `json:"completed"`
	Progress      *float64 `json:"progress"`
	Eta           *float64 `json:"eta"`
	LivePreview   *string  `json:"live_preview"`
	IDLivePreview int      `json:"id_live_preview"`
	TextInfo      *string  `json:"textinfo"`
}

// handleInternalProgress answers POST /internal/progress {"id_task": ...},
// the UI's poll while a task is queued or runs.
func (s *Server) handleInternalProgress(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDTask        string `json:"id_task"`
		IDLivePreview int    `json:"id_live_preview"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []validationItem{{Loc: []any{"body"}, Msg: err.Error(), Type: "value_error.jsondecode"}}})
		return
	}
	s.mu.Lock()
	out := internalProgress{
		Active:    req.IDTask != "" && req.IDTask == s.tasks.current,
		Queued:    slices.Contains(s.tasks.pending, req.IDTask),
		Completed: slices.Contains(s.tasks.finished, req.IDTask),
	}
	s.mu.Unlock()
	if !out.Active {
		text := "Waiting..."
		if out.Queued {
			text = "In queue..."
		}
		out.IDLivePreview, out.TextInfo = -1, &text
		writeJSON(w, http.StatusOK, out)
		return
	}
	p := s.Progress()
	out.Progress, out.Eta, out.IDLivePreview = &p.Progress, &p.EtaRelative, req.IDLivePreview
	writeJSON(w, http.StatusOK, out)
}

// handlePendingTasks answers GET /internal/pending-tasks: the UI tasks
// waiting for the queue lock, first come first.
func (s *Server) handlePendingTasks(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	tasks := append([]string{}, s.tasks.pending...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"size": len(tasks), "tasks": tasks})
}
