package shim

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveShim runs a shim with Serve on a loopback listener until the
// returned stop is called; stop returns Serve's result.
func serveShim(t *testing.T, lockDir, profile, upstream string) (*Shim, string, func() error) {
	t.Helper()
	p, err := LookupProfile(profile)
	require.NoError(t, err)
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	s, err := New(Config{Upstream: u, LockDir: lockDir, Profile: p, DrainTimeout: eventTimeout,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	stop := func() error {
		cancel()
		select {
		case err := <-served:
			return err
		case <-time.After(2 * eventTimeout):
			t.Fatal("Serve did not return")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return s, "http://" + ln.Addr().String(), stop
}

func TestShutdownLetsTheRunningJobFinishAndTurnsAwayTheLine(t *testing.T) {
	e := newEnv(t)
	s, base, stop := serveShim(t, e.dir, "a1111", e.a1111URL)
	running := make(chan error, 1)
	go func() { running <- client(base).A1111Txt2Img(context.Background(), 60) }()
	waitFor(t, "the job to run", func() bool { return e.a1111.Progress().State.JobCount == 1 })
	queued := make(chan error, 1)
	go func() { queued <- client(base).A1111Txt2Img(context.Background(), 3) }()
	waitFor(t, "a second job in line", func() bool { return s.line.len() == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-queued:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "shutting_down")
	case <-time.After(eventTimeout):
		t.Fatal("the queued request was not turned away")
	}
	require.NoError(t, <-running, "the running job finished and was answered")
	require.NoError(t, <-stopped)
	h, err := s.Lock().TryAcquire()
	require.NoError(t, err, "the lock is free after shutdown")
	require.NoError(t, h.Release())
	assert.Equal(t, int64(1), e.a1111.Counters().Succeeded)
}

func TestShutdownWaitsForTheRunningPrompt(t *testing.T) {
	e := newEnv(t)
	s, base, stop := serveShim(t, e.dir, "comfyui", e.comfyURL)
	resp, doc := postJSON(t, base+"/prompt", `{"prompt":`+string(promptGraph(40))+`}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id := doc["prompt_id"].(string)
	require.NoError(t, stop())
	assert.Zero(t, s.watch.count(), "no lock held after shutdown")
	require.NoError(t, client(e.comfyURL).WaitPrompt(context.Background(), id))
	assert.Zero(t, e.stats(t).Overlaps)
	st, err := e.gpu.Stats()
	require.NoError(t, err)
	assert.Empty(t, st.Running, "shutdown returned only once the prompt was done")
}

func TestStartingBesideABusyBackendHoldsTheLockUntilIdle(t *testing.T) {
	e := newEnv(t)
	done := e.a1111.StartLocalJob(60) // an extension's job, no HTTP request
	waitFor(t, "the local job to run", func() bool { return e.a1111.Progress().State.JobCount != 0 })
	s, _ := startShim(t, e.dir, "a1111", e.a1111URL)
	waitFor(t, "the shim to cover the busy backend", func() bool {
		st, err := s.Lock().Status()
		return err == nil && st.Held
	})
	require.NoError(t, <-done)
	waitFor(t, "the lock to be released once the backend is idle", func() bool {
		h, err := s.Lock().TryAcquire()
		if err != nil {
			return false
		}
		require.NoError(t, h.Release())
		return true
	})
}
