package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// Posting to the machines: one (postMachine) or every live one (postAll),
// for the control routes (interrupt.go, free.go).

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// postAll posts body to path on every live machine of the profile, at once.
func (g *Gateway) postAll(ctx context.Context, path string, body []byte) error {
	urls, err := g.cfg.Store.LiveURLs(ctx, g.cfg.Profile)
	if err != nil {
		return &redisError{err}
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Go(func() {
			if err := g.postMachine(ctx, u, path, body); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("gateway: %d of %d machines did not take POST %s: %v", len(errs), len(urls), path, errs)
	}
	return nil
}

// postMachine posts body (JSON) to path on the machine at base, bounded by
// machineReadTimeout; any 2xx answer is success.
func (g *Gateway) postMachine(ctx context.Context, base, path string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, machineReadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("gateway: bad machine URL %s: %w", base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("gateway: cannot reach the machine %s for POST %s: %w", base, path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("gateway: the machine %s answered POST %s with %s", base, path, resp.Status)
	}
	return nil
}
