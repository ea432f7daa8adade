package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// historyPollInterval is how often a ComfyUI client asks whether its prompt
// is done, as ComfyUI API scripts commonly do.
const historyPollInterval = 20 * time.Millisecond

// StatusError is an HTTP answer other than 200.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("loadgen: HTTP %d: %s", e.Code, e.Body)
}

// Unavailable reports whether err is a 503: nothing was forwarded.
func Unavailable(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusServiceUnavailable
}

// Client runs jobs against one base URL.
type Client struct {
	// Base is the base URL, such as http://127.0.0.1:3188.
	Base string
	// HTTP is the client used; nil means a client with its own transport.
	HTTP *http.Client
	// Affinity adds ?clientId=<the client's id> to every ComfyUI request,
	// so that a load balancer can keep a client on the machine that took
	// its prompt.
	Affinity bool
}

// ErrPromptLost is returned when a queued prompt is neither in ComfyUI's
// queue nor in its history: the machine that took it died or restarted.
var ErrPromptLost = errors.New("loadgen: prompt lost (neither queued nor in history)")

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// Result is what one job saw.
type Result struct {
	// Wait is the time the job spent in a shim's line (X-Gpulock-Wait), or
	// zero when no shim answered.
	Wait time.Duration
	// Total is the job's time from sending it to its end.
	Total time.Duration
}

// post sends a JSON body and decodes a 200 answer into out.
func (c *Client) post(ctx context.Context, path string, body any, out any) error {
	_, err := c.postHeader(ctx, path, body, out)
	return err
}

// postHeader is post that also returns the answer's headers.
func (c *Client) postHeader(ctx context.Context, path string, body any, out any) (http.Header, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return err
	}
	_, err = c.do(req, out)
	return err
}

func (c *Client) do(req *http.Request, out any) (http.Header, error) {
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.Header, &StatusError{Code: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.Header, err
	}
	return resp.Header, json.NewDecoder(resp.Body).Decode(out)
}

// waitOf reads X-Gpulock-Wait.
func waitOf(h http.Header) time.Duration {
	s, err := strconv.ParseFloat(h.Get("X-Gpulock-Wait"), 64)
	if err != nil {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// A1111Txt2Img runs one synchronous txt2img job with the given steps.
func (c *Client) A1111Txt2Img(ctx context.Context, steps int) error {
	_, err := c.RunA1111(ctx, steps)
	return err
}

// RunA1111 runs one synchronous txt2img job with the given steps and says
// how long it waited and took.
func (c *Client) RunA1111(ctx context.Context, steps int) (Result, error) {
	return c.RunA1111Task(ctx, steps, "")
}

// RunA1111Task is RunA1111 with the job named taskID (A1111's force_task_id)
// when taskID is not empty.
func (c *Client) RunA1111Task(ctx context.Context, steps int, taskID string) (Result, error) {
	start := time.Now()
	var out struct {
		Images []string `json:"images"`
	}
	body := map[string]any{"prompt": "a lighthouse", "steps": steps}
	if taskID != "" {
		body["force_task_id"] = taskID
	}
	h, err := c.postHeader(ctx, "/sdapi/v1/txt2img", body, &out)
	res := Result{Wait: waitOf(h), Total: time.Since(start)}
	if err != nil {
		return res, err
	}
	if len(out.Images) == 0 {
		return res, errors.New("loadgen: txt2img answered without images")
	}
	return res, nil
}

// ComfyPrompt queues one prompt built by graph and follows it to the end
// through /history, as API scripts do. It returns the prompt id, and an
// error if the prompt was refused or ended in an error.
func (c *Client) ComfyPrompt(ctx context.Context, graph json.RawMessage) (string, error) {
	id, _, err := c.RunComfy(ctx, graph)
	return id, err
}

// RunComfy is ComfyPrompt that also says how long the prompt waited in a
// shim's line and took in all.
func (c *Client) RunComfy(ctx context.Context, graph json.RawMessage) (string, Result, error) {
	return c.RunComfyID(ctx, graph, "")
}

// RunComfyID is RunComfy with the prompt's id chosen by the client when
// promptID is not empty (ComfyUI takes a given prompt_id as it is).
func (c *Client) RunComfyID(ctx context.Context, graph json.RawMessage, promptID string) (string, Result, error) {
	start := time.Now()
	clientID := fmt.Sprintf("loadgen-%08x", rand.Uint32())
	var queued struct {
		PromptID string `json:"prompt_id"`
	}
	body := map[string]any{"prompt": graph, "client_id": clientID}
	if promptID != "" {
		body["prompt_id"] = promptID
	}
	h, err := c.postHeader(ctx, c.comfyPath("/prompt", clientID), body, &queued)
	res := Result{Wait: waitOf(h)}
	if err != nil {
		res.Total = time.Since(start)
		return "", res, err
	}
	err = c.waitPrompt(ctx, queued.PromptID, clientID)
	res.Total = time.Since(start)
	return queued.PromptID, res, err
}

// comfyPath adds the affinity key to a ComfyUI path when asked to.
func (c *Client) comfyPath(path, clientID string) string {
	if !c.Affinity {
		return path
	}
	return path + "?clientId=" + clientID
}

// WaitPrompt follows a queued prompt through /history until it is done.
func (c *Client) WaitPrompt(ctx context.Context, id string) error {
	return c.waitPrompt(ctx, id, "")
}

// waitPrompt follows a prompt until it is in the history. A prompt that is
// in neither the history nor the queue is lost (ErrPromptLost).
func (c *Client) waitPrompt(ctx context.Context, id, clientID string) error {
	t := time.NewTicker(historyPollInterval)
	defer t.Stop()
	for {
		done, err := c.inHistory(ctx, id, clientID)
		if err != nil || done {
			return err
		}
		queued, err := c.inQueue(ctx, id, clientID)
		if err != nil {
			return err
		}
		if !queued {
			// It may have finished between the two looks: look again.
			if done, err := c.inHistory(ctx, id, clientID); err != nil || done {
				return err
			}
			return fmt.Errorf("%w: %s", ErrPromptLost, id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// inHistory reports whether the prompt is done, and fails if it ended in an error.
func (c *Client) inHistory(ctx context.Context, id, clientID string) (bool, error) {
	var hist map[string]struct {
		Status struct {
			StatusStr string `json:"status_str"`
		} `json:"status"`
	}
	if err := c.get(ctx, c.comfyPath("/history/"+id, clientID), &hist); err != nil {
		return false, err
	}
	h, ok := hist[id]
	if ok && h.Status.StatusStr == "error" {
		return true, fmt.Errorf("loadgen: prompt %s ended in an error", id)
	}
	return ok, nil
}

// inQueue reports whether the prompt is running or pending.
func (c *Client) inQueue(ctx context.Context, id, clientID string) (bool, error) {
	var q struct {
		Running [][]json.RawMessage `json:"queue_running"`
		Pending [][]json.RawMessage `json:"queue_pending"`
	}
	if err := c.get(ctx, c.comfyPath("/queue", clientID), &q); err != nil {
		return false, err
	}
	for _, item := range append(q.Running, q.Pending...) {
		var got string
		if len(item) > 1 && json.Unmarshal(item[1], &got) == nil && got == id {
			return true, nil
		}
	}
	return false, nil
}
