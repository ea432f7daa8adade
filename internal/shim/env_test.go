package shim

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakea1111"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/stretchr/testify/require"
)

const (
	// eventTimeout bounds every wait for an event in these tests.
	eventTimeout = 20 * time.Second
	// pollEvery is how often a condition is checked while waiting for it.
	pollEvery = 5 * time.Millisecond
	// stepDuration is one simulated sampling step: jobs of a few steps
	// keep the tests short.
	stepDuration = 5 * time.Millisecond
)

// env is two fake backends on one simulated GPU, each behind a shim.
type env struct {
	dir        string
	gpu        *simgpu.GPU
	comfy      *fakecomfy.Server
	a1111      *fakea1111.Server
	comfyURL   string // the backend itself
	a1111URL   string
	comfyShim  *Shim
	a1111Shim  *Shim
	comfyVia   string // through the shim
	a1111Via   string
	comfyFront *httptest.Server
	a1111Front *httptest.Server
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	var err error
	e.gpu, err = simgpu.Open(e.dir, 0, simgpu.Options{})
	require.NoError(t, err)
	e.comfy, err = fakecomfy.New(fakecomfy.Config{GPU: e.gpu, StepDuration: stepDuration})
	require.NoError(t, err)
	t.Cleanup(func() { e.comfy.Close() })
	e.a1111, err = fakea1111.New(fakea1111.Config{GPU: e.gpu, StepDuration: stepDuration, DefaultSteps: 4})
	require.NoError(t, err)
	t.Cleanup(func() { e.a1111.Close() })
	comfyBackend := httptest.NewServer(e.comfy)
	t.Cleanup(comfyBackend.Close)
	a1111Backend := httptest.NewServer(e.a1111)
	t.Cleanup(a1111Backend.Close)
	e.comfyURL, e.a1111URL = comfyBackend.URL, a1111Backend.URL

	e.comfyShim, e.comfyFront = startShim(t, e.dir, "comfyui", e.comfyURL, opts...)
	e.a1111Shim, e.a1111Front = startShim(t, e.dir, "a1111", e.a1111URL, opts...)
	e.comfyVia, e.a1111Via = e.comfyFront.URL, e.a1111Front.URL
	return e
}

// startShim starts a shim for profile in front of upstream, behind an httptest server.
func startShim(t *testing.T, lockDir, profile, upstream string, opts ...envOption) (*Shim, *httptest.Server) {
	t.Helper()
	p, err := LookupProfile(profile)
	require.NoError(t, err)
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	cfg := Config{Upstream: u, GPU: 0, LockDir: lockDir, Profile: p, WatchInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	s.Start()
	front := httptest.NewUnstartedServer(s)
	s.setTimeouts(front.Config) // the timeouts Serve runs with
	front.Start()
	t.Cleanup(func() {
		front.CloseClientConnections()
		front.Close()
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, front
}

func (e *env) stats(t *testing.T) simgpu.Stats {
	t.Helper()
	st, err := e.gpu.Stats()
	require.NoError(t, err)
	return st
}

func client(base string) *loadgen.Client { return &loadgen.Client{Base: base} }

// waitFor polls cond until it holds or eventTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, eventTimeout, pollEvery, "waiting for %s", what)
}

// promptGraph is a valid ComfyUI prompt of the given steps.
func promptGraph(steps int) []byte { return fakecomfy.TextToImagePrompt(steps, int64(steps)) }

// fakecomfyPrompt is a prompt request of the given steps, for EnqueueLocal.
func fakecomfyPrompt(steps int) fakecomfy.PromptRequest {
	return fakecomfy.PromptRequest{Prompt: promptGraph(steps)}
}

// shutdownPatience is how long a test lets Shutdown run to see that it
// waits: a measured interval, not a synchronisation.
const shutdownPatience = 100 * time.Millisecond
