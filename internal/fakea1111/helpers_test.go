package fakea1111

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// Timing constants of the tests.
const (
	testStep    = 2 * time.Millisecond
	testLoad    = 20 * time.Millisecond
	waitTimeout = 5 * time.Second
	pollTick    = 2 * time.Millisecond
	longSteps   = 5000 // a job that runs until interrupted
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a fake A1111 on a loopback httptest server with its own GPU.
type fixture struct {
	srv *Server
	ts  *httptest.Server
	gpu *simgpu.GPU
}

// newFixture starts a fake on a fresh 24 GiB simulated GPU.
func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	gpu, err := simgpu.Open(t.TempDir(), 0, simgpu.Options{TotalVRAM: 24 * simgpu.GiB, WorkingVRAM: 4 * simgpu.GiB})
	require.NoError(t, err)
	cfg := Config{GPU: gpu, StepDuration: testStep, DefaultSteps: 3, ModelLoadDuration: testLoad}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		require.NoError(t, srv.Close())
	})
	return &fixture{srv: srv, ts: ts, gpu: gpu}
}

// post sends body to path and returns the status and body.
func (f *fixture) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	return f.postCtx(t, t.Context(), path, body)
}

// postCtx is post with a context; it fails the test only on unexpected errors.
func (f *fixture) postCtx(t *testing.T, ctx context.Context, path, body string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// progress returns GET /sdapi/v1/progress.
func (f *fixture) progress(t *testing.T) Progress {
	t.Helper()
	resp, err := http.Get(f.ts.URL + "/sdapi/v1/progress")
	require.NoError(t, err)
	defer resp.Body.Close()
	var p Progress
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	return p
}

// waitSampling waits until a job of that name is past its first step.
func (f *fixture) waitSampling(t *testing.T, job string) {
	t.Helper()
	require.Eventually(t, func() bool {
		p := f.progress(t)
		return p.State.JobCount == 1 && p.State.Job == job && p.State.SamplingStep > 0
	}, waitTimeout, pollTick)
}

// result is one HTTP answer from a request run in the background.
type result struct {
	code int
	body string
}

// postAsync posts in a goroutine that the test waits for at cleanup.
func (f *fixture) postAsync(t *testing.T, ctx context.Context, path, body string) <-chan result {
	t.Helper()
	ch := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, b := f.postCtx(t, ctx, path, body)
		ch <- result{code, b}
	}()
	t.Cleanup(func() { <-done })
	return ch
}

// await returns the result or fails after waitTimeout.
func await[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		require.FailNow(t, "timed out")
	}
	var zero T
	return zero
}
