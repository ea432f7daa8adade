package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gpulock/gpulock/internal/fakea1111"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testDataWait shortens gradioDataWait in these tests, so that a UI job
// that waits in line for longer takes the path that joins the backend's
// queue again.
const testDataWait = 300 * time.Millisecond

func init() { gradioDataWait = testDataWait }

// longSteps makes a job that runs until the test interrupts it.
const longSteps = 4000

// uiSocket is a browser's gradio queue websocket, through the shim.
type uiSocket struct {
	conn *websocket.Conn
}

// dialUI opens base's /queue/join as a browser on base would (Origin is base).
func dialUI(ctx context.Context, base string) (*uiSocket, error) {
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/queue/join",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	return &uiSocket{conn: conn}, nil
}

// read returns the next frame, decoded.
func (u *uiSocket) read(ctx context.Context) (map[string]any, error) {
	_, data, err := u.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

// send writes v as a JSON frame.
func (u *uiSocket) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return u.conn.Write(ctx, websocket.MessageText, b)
}

// until reads frames until one whose msg is msg, and returns it.
func (u *uiSocket) until(ctx context.Context, msg string) (map[string]any, error) {
	for {
		m, err := u.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", msg, err)
		}
		if m["msg"] == msg {
			return m, nil
		}
	}
}

// start plays the client's side of the queue handshake up to sending the
// data frame of a call of fn with data.
func (u *uiSocket) start(ctx context.Context, fn int, data []any) error {
	if _, err := u.until(ctx, "send_hash"); err != nil {
		return err
	}
	if err := u.send(ctx, map[string]any{"fn_index": fn, "session_hash": "sess"}); err != nil {
		return err
	}
	if _, err := u.until(ctx, "send_data"); err != nil {
		return err
	}
	return u.send(ctx, map[string]any{"data": data, "event_data": nil, "fn_index": fn, "session_hash": "sess"})
}

// openUI dials base and starts a call, failing the test on errors; the
// socket is closed at cleanup.
func openUI(t *testing.T, base string, fn int, data []any) *uiSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	u, err := dialUI(ctx, base)
	require.NoError(t, err)
	t.Cleanup(func() { u.conn.CloseNow() })
	require.NoError(t, u.start(ctx, fn, data))
	return u
}

// must reads until msg, failing the test on errors.
func (u *uiSocket) must(t *testing.T, msg string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	m, err := u.until(ctx, msg)
	require.NoError(t, err)
	return m
}

// runUIJob runs one UI job through base's websocket to its end.
func runUIJob(ctx context.Context, base, taskID string, steps int) error {
	u, err := dialUI(ctx, base)
	if err != nil {
		return err
	}
	defer u.conn.CloseNow()
	if err := u.start(ctx, 9, fakea1111.UIJobData(taskID, steps)); err != nil {
		return err
	}
	m, err := u.until(ctx, "process_completed")
	if err != nil {
		return err
	}
	if m["success"] != true {
		return fmt.Errorf("%s: %v", taskID, m)
	}
	return nil
}

// ownHolds returns how many of its own jobs the shim holds the GPU for.
func ownHolds(s *Shim) int64 { return s.cover.own.Load() }

func TestGradioUIJobWaitsForTheLock(t *testing.T) {
	e := newEnv(t)
	release := holdGPU(t, e.a1111Shim)
	u := openUI(t, e.a1111Via, 5, fakea1111.UIJobData("task(wait)", longSteps))
	waitFor(t, "the UI job in line", func() bool { return e.a1111Shim.Waiting() == 1 })
	assert.Zero(t, e.a1111.GradioStats().Events, "nothing forwarded while the GPU is held")
	release()

	u.must(t, "process_starts")
	waitFor(t, "the job to run", func() bool { return e.a1111.Progress().State.JobCount == 1 })
	assert.EqualValues(t, 1, ownHolds(e.a1111Shim), "the lock is held while the job runs")
	require.True(t, e.a1111.Interrupt())
	m := u.must(t, "process_completed")
	assert.Equal(t, true, m["success"])
	assert.Zero(t, ownHolds(e.a1111Shim), "released on process_completed, before the client sees it")
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	_, err := u.read(ctx)
	assert.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err), "the backend's close is passed on")
	assert.EqualValues(t, 1, e.stats(t).Jobs)
}

func TestGradioLongWaitJoinsTheBackendAgain(t *testing.T) {
	e := newEnv(t)
	release := holdGPU(t, e.a1111Shim)
	u := openUI(t, e.a1111Via, 5, fakea1111.UIJobData("task(long)", 3))
	// Past testDataWait the shim drops the backend socket that asked for
	// the data, before gradio's own data timeout would fail the call.
	waitFor(t, "the backend socket to be dropped", func() bool { return e.a1111.GradioStats().LeftBeforeData == 1 })
	assert.EqualValues(t, 1, e.a1111Shim.Waiting(), "still in line")
	release()
	m := u.must(t, "process_completed")
	assert.Equal(t, true, m["success"])
	st := e.a1111.GradioStats()
	assert.EqualValues(t, 2, st.Joins, "joined again once the lock was held")
	assert.EqualValues(t, 1, st.Events)
	assert.Zero(t, st.DataTimeouts)
	assert.EqualValues(t, 1, e.stats(t).Jobs)
}

func TestGradioNonTaskCallsPassWhileTheGPUIsHeld(t *testing.T) {
	e := newEnv(t)
	defer holdGPU(t, e.a1111Shim)()
	for _, data := range [][]any{{"hello", 1}, {}, {"task(", 2}, {"x", "task(not first)"}, {12}} {
		u := openUI(t, e.a1111Via, 3, data)
		assert.Equal(t, true, u.must(t, "process_completed")["success"], "%v", data)
		assert.Zero(t, e.a1111Shim.Waiting())
	}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/internal/pending-tasks", ""},
		{http.MethodPost, "/internal/progress", `{"id_task": "task(x)", "id_live_preview": -1}`},
		{http.MethodPost, "/run/predict", `{"data": ["hello"], "fn_index": 1, "session_hash": "s"}`},
	} {
		req, err := http.NewRequestWithContext(t.Context(), r.method, e.a1111Via+r.path, strings.NewReader(r.body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, r.path)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, r.path)
	}
	assert.Zero(t, e.a1111.Counters().Jobs)
}

func TestGradioMixedLoadNeverOverlaps(t *testing.T) {
	e := newEnv(t)
	const uiJobs = 6
	var wg sync.WaitGroup
	errs := make(chan error, uiJobs)
	for i := range uiJobs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
			defer cancel()
			errs <- runUIJob(ctx, e.a1111Via, fmt.Sprintf("task(mixed-%d)", i), 3)
		})
	}
	require.Empty(t, mixedLoad(t, e.comfyVia, e.a1111Via, 6))
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	waitFor(t, "the shims to let go of the GPU", func() bool {
		return e.comfyShim.watch.count() == 0 && ownHolds(e.a1111Shim) == 0
	})
	st := e.stats(t)
	assert.Zero(t, st.Overlaps, "overlaps: %+v", st.OverlapRecords)
	assert.EqualValues(t, uiJobs, e.a1111.GradioStats().UIJobs)
	assert.GreaterOrEqual(t, st.Jobs, int64(12+uiJobs))
}

func TestGradioClientLeavesWhileQueued(t *testing.T) {
	e := newEnv(t)
	release := holdGPU(t, e.a1111Shim)
	defer release()
	u := openUI(t, e.a1111Via, 5, fakea1111.UIJobData("task(gone)", 3))
	waitFor(t, "the UI job in line", func() bool { return e.a1111Shim.Waiting() == 1 })
	require.NoError(t, u.conn.Close(websocket.StatusGoingAway, "tab closed"))
	waitFor(t, "the UI job to leave the line", func() bool { return e.a1111Shim.Waiting() == 0 })
	waitFor(t, "the backend socket to close", func() bool { return e.a1111.GradioStats().ClientGone == 1 })
	st := e.a1111.GradioStats()
	assert.Zero(t, st.Events, "nothing forwarded")
	assert.Zero(t, st.UIJobs)
	assert.Zero(t, ownHolds(e.a1111Shim))
}

func TestGradioClientLeavesMidJobKeepsTheGPUUntilIdle(t *testing.T) {
	e := newEnv(t)
	u := openUI(t, e.a1111Via, 5, fakea1111.UIJobData("task(mid)", longSteps))
	u.must(t, "process_starts")
	waitFor(t, "the job to run", func() bool { return e.a1111.Progress().State.JobCount == 1 })
	// A ComfyUI prompt waits for the GPU meanwhile.
	comfyDone := make(chan error, 1)
	go func() {
		_, err := client(e.comfyVia).ComfyPrompt(context.Background(), fakecomfy.TextToImagePrompt(2, 1))
		comfyDone <- err
	}()
	waitFor(t, "the prompt in line", func() bool { return e.comfyShim.Waiting() == 1 })

	u.conn.CloseNow() // the browser vanishes mid-job
	waitFor(t, "the relay to close the backend socket", func() bool { return e.a1111.GradioStats().ClientGone == 1 })
	assert.EqualValues(t, 1, ownHolds(e.a1111Shim), "the lock stays while A1111 is busy")
	assert.Equal(t, 1, e.comfyShim.Waiting())
	assert.EqualValues(t, 1, e.a1111.Progress().State.JobCount)

	require.True(t, e.a1111.Interrupt())
	waitFor(t, "the lock to be released once A1111 is idle", func() bool { return ownHolds(e.a1111Shim) == 0 })
	select {
	case err := <-comfyDone:
		require.NoError(t, err)
	case <-time.After(eventTimeout):
		t.Fatal("the prompt never ran")
	}
	st := e.stats(t)
	assert.Zero(t, st.Overlaps, "overlaps: %+v", st.OverlapRecords)
}

func TestGradioQueueFull(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxQueue = 1 })
	defer holdGPU(t, e.a1111Shim)()
	openUI(t, e.a1111Via, 5, fakea1111.UIJobData("task(first)", 3))
	waitFor(t, "the first job in line", func() bool { return e.a1111Shim.Waiting() == 1 })
	u := openUI(t, e.a1111Via, 5, fakea1111.UIJobData("task(second)", 3))
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	m, err := u.read(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"msg": "queue_full"}, m)
	_, err = u.read(ctx)
	assert.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err))
	assert.Zero(t, e.a1111.GradioStats().Events, "nothing forwarded")
}

func TestGradioRunPredictHoldsUntilAnswer(t *testing.T) {
	withGradioRoutes := func(c *Config) {
		if c.Profile.Name == "a1111" {
			c.GPURoutes = gradioRoutes()
		}
	}
	e := newEnv(t, withGradioRoutes)
	release := holdGPU(t, e.a1111Shim)
	body, err := json.Marshal(map[string]any{"data": fakea1111.UIJobData("task(predict)", 3), "fn_index": 1, "session_hash": "s"})
	require.NoError(t, err)
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Post(e.a1111Via+"/run/predict", "application/json", bytes.NewReader(body))
		if err != nil {
			answered <- nil
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp
	}()
	waitFor(t, "the call in line", func() bool { return e.a1111Shim.Waiting() == 1 })
	assert.Zero(t, e.a1111.GradioStats().Predicts, "nothing forwarded while the GPU is held")
	release()
	select {
	case resp := <-answered:
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get(HeaderWait))
	case <-time.After(eventTimeout):
		t.Fatal("no answer")
	}
	assert.EqualValues(t, 1, e.a1111.GradioStats().UIJobs)
	assert.Zero(t, ownHolds(e.a1111Shim))
}

func TestIsGradioTask(t *testing.T) {
	for body, want := range map[string]bool{
		`{"data": ["task(abc)", 1]}`:          true,
		`{"data": ["task()"]}`:                true,
		`{"data": ["task(abc"]}`:              false,
		`{"data": ["x", "task(abc)"]}`:        false,
		`{"data": []}`:                        false,
		`{"data": "task(abc)"}`:               false,
		`not json "task(abc)"`:                false,
		`{"fn_index": 1, "data": ["task(")]}`: false,
	} {
		assert.Equal(t, want, isGradioTask([]byte(body)), body)
	}
}
