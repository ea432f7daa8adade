package fakea1111

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gradioJoin opens /queue/join and answers send_hash; it returns the socket
// after the frames up to send_data.
func gradioJoin(t *testing.T, f *fixture, fn int) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.ts.URL, "http")+"/queue/join", nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.CloseNow() })
	conn.SetReadLimit(1 << 20)
	require.Equal(t, "send_hash", readMsg(t, conn)["msg"])
	writeFrame(t, conn, map[string]any{"fn_index": fn, "session_hash": "s1"})
	est := readMsg(t, conn)
	require.Equal(t, "estimation", est["msg"])
	assert.Contains(t, est, "queue_size")
	require.Equal(t, "send_data", readMsg(t, conn)["msg"])
	return conn
}

func readMsg(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	_, data, err := conn.Read(ctx)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

func writeFrame(t *testing.T, conn *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, conn.Write(t.Context(), websocket.MessageText, b))
}

// getBody returns the body of a GET.
func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestGradioQueueRunsAUIJob(t *testing.T) {
	f := newFixture(t, nil)
	conn := gradioJoin(t, f, 7)
	writeFrame(t, conn, map[string]any{"data": UIJobData("task(abc)", 2000), "event_data": nil, "fn_index": 7, "session_hash": "s1"})
	require.Equal(t, "process_starts", readMsg(t, conn)["msg"])
	require.Eventually(t, func() bool { return f.progress(t).State.JobCount == 1 }, waitTimeout, pollTick)
	_, body := f.post(t, "/internal/progress", `{"id_task": "task(abc)", "id_live_preview": -1}`)
	assert.Contains(t, body, `"active":true`)
	require.True(t, f.srv.Interrupt())
	done := readMsg(t, conn)
	assert.Equal(t, "process_completed", done["msg"])
	assert.Equal(t, true, done["success"])
	assert.Len(t, done["output"].(map[string]any)["data"], 4)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	_, _, err := conn.Read(ctx)
	assert.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err), "gradio closes after process_completed")
	assert.Zero(t, f.progress(t).State.JobCount)
	_, body = f.post(t, "/internal/progress", `{"id_task": "task(abc)"}`)
	assert.Contains(t, body, `"completed":true`)
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.Jobs)
}

func TestGradioQueueNonTaskAnswersAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	conn := gradioJoin(t, f, 3)
	writeFrame(t, conn, map[string]any{"data": []any{"hello", 1}, "event_data": nil, "fn_index": 3, "session_hash": "s1"})
	require.Equal(t, "process_starts", readMsg(t, conn)["msg"])
	assert.Equal(t, "process_completed", readMsg(t, conn)["msg"])
	assert.Zero(t, f.srv.Counters().Jobs)
}

func TestGradioQueueDisconnectCancelsNothing(t *testing.T) {
	f := newFixture(t, nil)
	blocker := f.srv.StartLocalJob(longSteps) // the UI job waits behind it
	require.Eventually(t, func() bool { return f.progress(t).State.JobCount == 1 }, waitTimeout, pollTick)
	conn := gradioJoin(t, f, 1)
	writeFrame(t, conn, map[string]any{"data": UIJobData("task(q)", 3), "fn_index": 1, "session_hash": "s1"})
	require.Equal(t, "process_starts", readMsg(t, conn)["msg"])
	require.Eventually(t, func() bool {
		body := getBody(t, f.ts.URL+"/internal/pending-tasks")
		return strings.Contains(body, `"tasks":["task(q)"]`)
	}, waitTimeout, pollTick)
	conn.Close(websocket.StatusGoingAway, "")
	f.srv.Interrupt()
	require.NoError(t, <-blocker)
	require.Eventually(t, func() bool { c := f.srv.Counters(); return c.Succeeded == 1 && c.Interrupted == 1 }, waitTimeout, pollTick, "the UI job ran anyway")
	require.Eventually(t, func() bool { return f.srv.Counters().Abandoned == 1 }, waitTimeout, pollTick)
}

func TestGradioQueueDataTimeout(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.GradioDataTimeout = 20 * time.Millisecond })
	conn := gradioJoin(t, f, 1)
	m := readMsg(t, conn)
	assert.Equal(t, "process_completed", m["msg"])
	assert.Equal(t, false, m["success"])
	assert.Equal(t, "Time out uploading data to server", m["output"].(map[string]any)["error"])
	assert.EqualValues(t, 1, f.srv.GradioStats().DataTimeouts)
}

func TestRunPredict(t *testing.T) {
	f := newFixture(t, nil)
	body, err := json.Marshal(map[string]any{"data": UIJobData("task(p)", 2), "fn_index": 1, "session_hash": "s"})
	require.NoError(t, err)
	code, out := f.post(t, "/run/predict", string(body))
	require.Equal(t, 200, code, out)
	assert.Contains(t, out, `"is_generating":false`)
	assert.EqualValues(t, 1, f.srv.Counters().Succeeded)
	code, _ = f.post(t, "/api/predict", `{"data": [1], "fn_index": 2, "session_hash": "s"}`)
	assert.Equal(t, 200, code)
	assert.EqualValues(t, 1, f.srv.Counters().Jobs, "no task id: no job")
}
