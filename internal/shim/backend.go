package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/internal/deadwait"
)

// idlePollInterval is how often the backend is asked whether it is idle
// while the shim waits for it (it has no event for that).
const idlePollInterval = 250 * time.Millisecond

// errBackendDown says the backend refused the connection: nothing listens.
// It is a deadwait.ErrDown, as the wait for a dead holder's backend wants.
var errBackendDown = fmt.Errorf("shim: the backend is not listening (%w)", deadwait.ErrDown)

// getJSON fetches a backend URL path and decodes its JSON answer.
func (s *Shim) getJSON(ctx context.Context, path string, v any) error {
	return s.callJSON(ctx, http.MethodGet, path, "", v)
}

// callJSON sends a request to the backend and decodes its JSON answer into
// v (if not nil). A refused connection gives errBackendDown.
func (s *Shim) callJSON(ctx context.Context, method, path, body string, v any) error {
	u := s.cfg.Upstream.JoinPath(path)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u = s.cfg.Upstream.JoinPath(path[:i])
		u.RawQuery = path[i+1:]
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: %v", errBackendDown, err)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return fmt.Errorf("shim: %s %s answered %s", method, path, resp.Status)
	}
	if v == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// busy asks the backend whether it is using the GPU now: ComfyUI with a
// prompt running or queued, A1111 with a job (job_count != 0; -1 while a
// model loads). A generic backend cannot say and counts as idle.
func (s *Shim) busy(ctx context.Context) (bool, error) {
	switch s.cfg.Profile.Name {
	case "comfyui":
		q, err := s.comfyQueue(ctx)
		if err != nil {
			return false, err
		}
		return len(q) > 0, nil
	case "a1111":
		var p struct {
			State struct {
				JobCount int `json:"job_count"`
			} `json:"state"`
		}
		// skip_current_image spares A1111 from encoding a live preview.
		if err := s.getJSON(ctx, "/sdapi/v1/progress?skip_current_image=true", &p); err != nil {
			return false, err
		}
		return p.State.JobCount != 0, nil
	}
	return false, nil
}

// comfyQueue returns the ids of the prompts in ComfyUI's queue, running or pending.
func (s *Shim) comfyQueue(ctx context.Context) (map[string]bool, error) {
	var q struct {
		Running [][]json.RawMessage `json:"queue_running"`
		Pending [][]json.RawMessage `json:"queue_pending"`
	}
	if err := s.getJSON(ctx, "/queue", &q); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, item := range append(q.Running, q.Pending...) {
		// [number, prompt_id, prompt, extra_data, outputs]
		var id string
		if len(item) > 1 && json.Unmarshal(item[1], &id) == nil {
			ids[id] = true
		}
	}
	return ids, nil
}

// interrupt asks the backend to stop its running job (ComfyUI: only the
// given prompt, when one is given).
func (s *Shim) interrupt(ctx context.Context, promptID string) error {
	switch s.cfg.Profile.Name {
	case "comfyui":
		body := ""
		if promptID != "" {
			body = string(mustJSON(map[string]string{"prompt_id": promptID}))
		}
		return s.callJSON(ctx, http.MethodPost, "/interrupt", body, nil)
	case "a1111":
		return s.callJSON(ctx, http.MethodPost, "/sdapi/v1/interrupt", "", nil)
	}
	return nil
}

// waitIdle waits, asking every idlePollInterval, until the backend reports
// idle or is down, for at most the configured IdleTimeout.
func (s *Shim) waitIdle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.IdleTimeout)
	defer cancel()
	t := time.NewTicker(idlePollInterval)
	defer t.Stop()
	for {
		busy, err := s.busy(ctx)
		if errors.Is(err, errBackendDown) || (err == nil && !busy) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shim: the backend still reports busy after %s: %w", s.cfg.IdleTimeout, ctx.Err())
		case <-t.C:
		}
	}
}
