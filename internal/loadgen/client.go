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
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// post sends a JSON body and decodes a 200 answer into out.
func (c *Client) post(ctx context.Context, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &StatusError{Code: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// A1111Txt2Img runs one synchronous txt2img job with the given steps.
func (c *Client) A1111Txt2Img(ctx context.Context, steps int) error {
	var out struct {
		Images []string `json:"images"`
	}
	if err := c.post(ctx, "/sdapi/v1/txt2img", map[string]any{"prompt": "a lighthouse", "steps": steps}, &out); err != nil {
		return err
	}
	if len(out.Images) == 0 {
		return errors.New("loadgen: txt2img answered without images")
	}
	return nil
}

// ComfyPrompt queues one prompt built by graph and follows it to the end
// through /history, as API scripts do. It returns the prompt id, and an
// error if the prompt was refused or ended in an error.
func (c *Client) ComfyPrompt(ctx context.Context, graph json.RawMessage) (string, error) {
	clientID := fmt.Sprintf("loadgen-%08x", rand.Uint32())
	var queued struct {
		PromptID string `json:"prompt_id"`
	}
	if err := c.post(ctx, "/prompt", map[string]any{"prompt": graph, "client_id": clientID}, &queued); err != nil {
		return "", err
	}
	return queued.PromptID, c.WaitPrompt(ctx, queued.PromptID)
}

// WaitPrompt follows a queued prompt through /history until it is done.
func (c *Client) WaitPrompt(ctx context.Context, id string) error {
	t := time.NewTicker(historyPollInterval)
	defer t.Stop()
	for {
		var hist map[string]struct {
			Status struct {
				StatusStr string `json:"status_str"`
				Completed bool   `json:"completed"`
			} `json:"status"`
		}
		if err := c.get(ctx, "/history/"+id, &hist); err != nil {
			return err
		}
		if h, ok := hist[id]; ok {
			if h.Status.StatusStr == "error" {
				return fmt.Errorf("loadgen: prompt %s ended in an error", id)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
