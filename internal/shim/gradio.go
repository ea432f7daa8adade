package shim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// A1111's browser UI (gradio 3.41) starts its GPU jobs over a websocket at
// /queue/join, where a reverse proxy only copies bytes. The shim ends that
// websocket itself and relays frames both ways, in order and unchanged,
// except for a UI job's data frame:
//
//	server {"msg": "send_hash"}
//	client {"fn_index": N, "session_hash": S}
//	server {"msg": "estimation", ...}
//	server {"msg": "send_data"}
//	client {"data": ["task(...)", ...], "event_data": null, "fn_index": N, "session_hash": S}   <- held until the lock is held
//	server {"msg": "process_starts"}
//	server {"msg": "process_generating", ...} (any number)
//	server {"msg": "process_completed", "output": {...}, "success": true}   <- the lock is released
//	server closes
//
// A data frame whose data[0] is a string "task(...)" is GPU work: that is
// what A1111's wrap_gradio_gpu_call keys on (fn_index differs per install).
// Other calls never wait. The lock is released on process_completed, or,
// when a socket ends first, once A1111 reports idle.
//
// Gradio waits only 60 seconds for the data frame after send_data, then
// fails the call ("Time out uploading data to server"). A data frame that
// waits longer than gradioDataWait for the lock is therefore taken off that
// backend socket, which the shim closes; once the lock is held, the shim
// joins the backend's queue again, answering its send_hash and send_data
// with the client's frames, and passes the rest on as before.

// routeGradioQueue names UI jobs from the gradio queue in line, logs and metrics.
const routeGradioQueue = "gradio /queue/join"

// Timing of the gradio relay.
const (
	// gradioDialTimeout bounds the websocket handshake with the backend.
	gradioDialTimeout = 30 * time.Second
	// gradioWriteTimeout bounds each frame written to either side.
	gradioWriteTimeout = time.Minute
)

// gradioDataWait is how long a held data frame may wait for the lock on the
// backend socket that asked for it; gradio 3.41 gives up after 60 seconds.
// It is a variable so that tests can shorten it.
var gradioDataWait = 45 * time.Second

// gradioRoutes are the GPU routes of A1111 started with --no-gradio-queue:
// the UI posts its calls to /run/predict and holds the request open for the
// job. Only calls whose data[0] is "task(...)" are GPU work.
func gradioRoutes() []Route {
	return []Route{
		withBodyCheck(mustRoute("POST /run/predict", holdUntilAnswer), judgeGradioCall),
		withBodyCheck(mustRoute("POST /run/predict/", holdUntilAnswer), judgeGradioCall),
		withBodyCheck(mustRoute("POST /api/predict", holdUntilAnswer), judgeGradioCall),
		withBodyCheck(mustRoute("POST /api/predict/", holdUntilAnswer), judgeGradioCall),
	}
}

// judgeGradioCall judges a /run/predict body: GPU work when it is a UI job,
// unknown when it may be one that the shim cannot read (a compressed body,
// or one naming a task that Go's JSON rejects).
func judgeGradioCall(body []byte, h http.Header) verdict {
	switch {
	case opaqueBody(h):
		return unknownWork
	case isGradioTask(body):
		return gpuWork
	case bytes.Contains(body, []byte(`"task(`)) && !json.Valid(body):
		return unknownWork
	}
	return notGPUWork
}

// isGradioTask reports whether a gradio call's JSON body (or data frame)
// is a UI GPU job: data[0] is a string "task(...)".
func isGradioTask(body []byte) bool {
	_, ok := gradioTaskID(body)
	return ok
}

// gradioTaskID returns the task id of a gradio call's JSON body, if its
// data[0] is a string that starts with "task(" and ends with ")".
func gradioTaskID(body []byte) (string, bool) {
	if !bytes.Contains(body, []byte(`"task(`)) {
		return "", false // cheap: most frames are not UI jobs
	}
	var call struct {
		Data []json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &call) != nil || len(call.Data) == 0 {
		return "", false
	}
	var id string
	if json.Unmarshal(call.Data[0], &id) != nil || len(id) < len("task()") ||
		!strings.HasPrefix(id, "task(") || !strings.HasSuffix(id, ")") {
		return "", false
	}
	return id, true
}

// isGradioQueue reports whether r opens A1111's gradio queue websocket
// (/queue/join, also under a --subpath prefix).
func (s *Shim) isGradioQueue(r *http.Request) bool {
	return s.cfg.Profile.Name == "a1111" && r.Method == http.MethodGet &&
		strings.HasSuffix(r.URL.Path, "/queue/join") &&
		headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// headerHasToken reports whether the comma-separated header key holds token,
// ignoring case.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
