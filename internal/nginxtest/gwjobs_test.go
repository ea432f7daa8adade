package nginxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gwJob is one job a client sent through nginx and how it ended for the
// client.
type gwJob struct {
	id      string // ComfyUI's prompt_id, A1111's force_task_id: its name in the GPUs' journals
	profile string
	steps   int
	// code and errType are the final answer: for A1111 the job's, for
	// ComfyUI the POST /prompt's (200: accepted).
	code    int
	errType string // error.type of a JSON error body
	message string // the error's message, or the ComfyUI execution_error's
	sendErr error  // no HTTP answer at all
	// status is an accepted prompt's history status_str ("" : none seen).
	status string
}

// accepted reports whether the cluster took the job on: an A1111 job that
// got an answer from a gateway, or a prompt POST /prompt answered 200.
func (j *gwJob) accepted() bool { return j.sendErr == nil && j.errType != "gateway_failed" }

// gwClient sends jobs through nginx.
type gwClient struct {
	base map[string]string
	http *http.Client
}

func newGWClient(r *gwRig) *gwClient {
	return &gwClient{base: r.base, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
}

// post sends body to path of profile's nginx port and returns the status,
// the body, or the error of a request that got no answer.
func (c *gwClient) post(ctx context.Context, profile, path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base[profile]+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

func (c *gwClient) do(req *http.Request) (int, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// setError fills j's errType and message from a JSON error body (the
// gateway's and nginx's {"error":{"type","message"}}).
func (j *gwJob) setError(body []byte) {
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Type != "" {
		j.errType, j.message = e.Error.Type, e.Error.Message
		return
	}
	j.errType, j.message = "unreadable", strings.TrimSpace(string(body))
}

// run sends j and, for a prompt, follows its history until it is there or
// ctx ends.
func (c *gwClient) run(ctx context.Context, j *gwJob) {
	if j.profile == "a1111" {
		body := map[string]any{"prompt": "a lighthouse", "steps": j.steps, "force_task_id": j.id}
		var b []byte
		j.code, b, j.sendErr = c.post(ctx, "a1111", "/sdapi/v1/txt2img", body)
		if j.sendErr == nil && j.code != http.StatusOK {
			j.setError(b)
		}
		return
	}
	body := map[string]any{"prompt": fakecomfy.TextToImagePrompt(j.steps, int64(j.steps)), "prompt_id": j.id,
		"client_id": "chaos-" + j.id}
	var b []byte
	j.code, b, j.sendErr = c.post(ctx, "comfyui", "/prompt", body)
	if j.sendErr != nil {
		return
	}
	if j.code != http.StatusOK {
		j.setError(b)
		return
	}
	c.follow(ctx, j)
}

// follow polls the prompt's /history through nginx until it has an entry.
func (c *gwClient) follow(ctx context.Context, j *gwJob) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if st, msg, ok := c.history(ctx, j.id); ok {
			j.status, j.message = st, msg
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// history reads prompt id's history entry through nginx: its status_str
// and the message of its execution_error, if any.
func (c *gwClient) history(ctx context.Context, id string) (status, message string, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base["comfyui"]+"/history/"+id, nil)
	if err != nil {
		return "", "", false
	}
	code, b, err := c.do(req)
	if err != nil || code != http.StatusOK {
		return "", "", false // a gateway or Redis down for a moment: ask again
	}
	var doc map[string]struct {
		Status struct {
			StatusStr string            `json:"status_str"`
			Messages  []json.RawMessage `json:"messages"`
		} `json:"status"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return "", "", false
	}
	e, found := doc[id]
	if !found {
		return "", "", false
	}
	for _, m := range e.Status.Messages {
		var pair []json.RawMessage
		var kind string
		if json.Unmarshal(m, &pair) != nil || len(pair) != 2 || json.Unmarshal(pair[0], &kind) != nil || kind != "execution_error" {
			continue
		}
		var ee struct {
			Message string `json:"exception_message"`
		}
		_ = json.Unmarshal(pair[1], &ee)
		message = ee.Message
	}
	return e.Status.StatusStr, message, true
}

// begun reads every machine's journal: per job id, the machines where it
// began; and the total of overlaps on the machines' GPUs.
func (r *gwRig) begun(t *testing.T) (perJob map[string][]string, overlaps int64) {
	t.Helper()
	perJob = map[string][]string{}
	for _, m := range r.machines {
		g := m.gpu(t)
		refs, err := g.Journal()
		require.NoError(t, err)
		for _, ref := range refs {
			perJob[ref.JobID] = append(perJob[ref.JobID], m.name)
		}
		st, err := g.Stats()
		require.NoError(t, err)
		overlaps += st.Overlaps
		assert.Zero(t, st.Overlaps, "%s's GPU ran two jobs at once: %+v", m.name, st.OverlapRecords)
	}
	return perJob, overlaps
}

// outcome names how j ended, for the counts.
func (j *gwJob) outcome() string {
	switch {
	case j.sendErr != nil:
		return "no answer"
	case j.profile == "comfyui" && j.code == http.StatusOK:
		if j.status == "" {
			return "prompt without history"
		}
		return "prompt " + j.status
	case j.code == http.StatusOK:
		return "a1111 ok"
	default:
		return fmt.Sprintf("%s %d %s", j.profile, j.code, j.errType)
	}
}

// getJSON GETs path of profile's nginx port and decodes its 200 answer.
func (c *gwClient) getJSON(t *testing.T, profile, path string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base[profile]+path, nil)
	require.NoError(t, err)
	code, b, err := c.do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "GET %s: %s", path, b)
	require.NoError(t, json.Unmarshal(b, out), "GET %s", path)
}
