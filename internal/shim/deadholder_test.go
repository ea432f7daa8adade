package shim

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/deadholdertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// busyBackend answers ComfyUI's /queue and A1111's /progress as busy while
// busy is set, and counts the questions.
type busyBackend struct {
	busy  atomic.Bool
	asked atomic.Int64
}

func (b *busyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.asked.Add(1)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/queue" && b.busy.Load():
		_, _ = io.WriteString(w, `{"queue_running": [[0, "p1", {}, {}, []]], "queue_pending": []}`)
	case r.URL.Path == "/queue":
		_, _ = io.WriteString(w, `{"queue_running": [], "queue_pending": []}`)
	case r.URL.Path == "/sdapi/v1/progress" && b.busy.Load():
		_, _ = io.WriteString(w, `{"state": {"job_count": 1}}`)
	case r.URL.Path == "/sdapi/v1/progress":
		_, _ = io.WriteString(w, `{"state": {"job_count": 0}}`)
	default:
		http.NotFound(w, r)
	}
}

// leaveDeadHolder makes the lock file of GPU 0 in dir hold the description
// of a holder of backend (profile, upstream) that ended without releasing.
func leaveDeadHolder(t *testing.T, dir, profile, upstream string) {
	t.Helper()
	deadholdertest.Leave(t, dir, "dead-"+profile, profile, upstream)
}

// takeLock takes GPU 0's lock in dir as the next holder.
func takeLock(t *testing.T, dir string) (*gpulock.Lock, *gpulock.Handle) {
	t.Helper()
	return deadholdertest.Take(t, dir, "next")
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestWaitDeadHolderWaitsForTheBackend leaves a dead holder of a busy
// backend, for each profile: the next holder waits until the backend is
// idle, and meanwhile the lock file still names the dead holder.
func TestWaitDeadHolderWaitsForTheBackend(t *testing.T) {
	for _, profile := range []string{"comfyui", "a1111"} {
		t.Run(profile, func(t *testing.T) {
			b := &busyBackend{}
			b.busy.Store(true)
			srv := httptest.NewServer(b)
			defer srv.Close()
			dir := t.TempDir()
			leaveDeadHolder(t, dir, profile, srv.URL)
			l, h := takeLock(t, dir)

			done := make(chan error, 1)
			go func() {
				_, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Timeout: eventTimeout, Logger: quietLog})
				done <- err
			}()
			waitFor(t, "the backend to be asked twice", func() bool { return b.asked.Load() >= 2 })
			select {
			case err := <-done:
				t.Fatalf("went ahead while the backend was busy: %v", err)
			default:
			}
			st, err := l.Status()
			require.NoError(t, err)
			require.NotNil(t, st.Holder, "the dead holder's description stays while we wait")
			assert.Equal(t, "dead-"+profile, st.Holder.Service)

			b.busy.Store(false)
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(eventTimeout):
				t.Fatal("still waiting after the backend became idle")
			}
			st, err = l.Status()
			require.NoError(t, err)
			require.NotNil(t, st.Holder)
			assert.Equal(t, "next", st.Holder.Service, "the new holder's own description after the wait")
		})
	}
}

// TestWaitDeadHolderGivesUpAtTheTimeout: a backend that stays busy is
// waited for only up to the timeout; then the new holder goes ahead.
func TestWaitDeadHolderGivesUpAtTheTimeout(t *testing.T) {
	b := &busyBackend{}
	b.busy.Store(true)
	srv := httptest.NewServer(b)
	defer srv.Close()
	dir := t.TempDir()
	leaveDeadHolder(t, dir, "comfyui", srv.URL)
	l, h := takeLock(t, dir)
	const timeout = 300 * time.Millisecond
	waited, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Timeout: timeout, Logger: quietLog})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, waited, timeout)
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "next", st.Holder.Service)
}

// TestWaitDeadHolderAbandonedPassesItOn: a wait whose context ends returns
// the error, and the released lock still names the dead holder's backend
// for the holder after.
func TestWaitDeadHolderAbandonedPassesItOn(t *testing.T) {
	b := &busyBackend{}
	b.busy.Store(true)
	srv := httptest.NewServer(b)
	defer srv.Close()
	dir := t.TempDir()
	leaveDeadHolder(t, dir, "a1111", srv.URL)
	l, h := takeLock(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := WaitDeadHolder(ctx, h, DeadHolderOptions{Timeout: eventTimeout, Logger: quietLog})
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, h.Release())

	h, err = l.TryAcquire()
	require.NoError(t, err)
	defer h.Release()
	left, ok := h.Leftover()
	require.True(t, ok)
	require.NotNil(t, left.Backend)
	assert.Equal(t, srv.URL, left.Backend.Upstream)
}

// TestWaitDeadHolderSkipsWhatItCannotAsk: nothing to wait for after a
// clean release, a holder without a backend, a backend that is down, or
// one that is not on a loopback address (never dialled).
func TestWaitDeadHolderSkipsWhatItCannotAsk(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	for name, upstream := range map[string]string{
		"down":          down,
		"not loopback":  "http://192.0.2.1:8188",
		"not http":      "file:///etc/passwd",
		"user info":     "http://u:p@127.0.0.1:1",
		"unknown scope": "http://[::1%25eth0]:1",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			leaveDeadHolder(t, dir, "comfyui", upstream)
			_, h := takeLock(t, dir)
			start := time.Now()
			waited, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Timeout: eventTimeout, Logger: quietLog})
			require.NoError(t, err)
			assert.Less(t, waited, deadHolderAsk)
			assert.Less(t, time.Since(start), deadHolderAsk, "nothing is waited for")
		})
	}

	t.Run("generic profile", func(t *testing.T) {
		dir := t.TempDir()
		leaveDeadHolder(t, dir, "generic", down)
		_, h := takeLock(t, dir)
		waited, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Logger: quietLog})
		require.NoError(t, err)
		assert.Zero(t, waited)
	})
	t.Run("released", func(t *testing.T) {
		dir := t.TempDir()
		l, h := takeLock(t, dir)
		require.NoError(t, h.Release())
		h, err := l.TryAcquire()
		require.NoError(t, err)
		defer h.Release()
		_, left := h.Leftover()
		assert.False(t, left)
		waited, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Logger: quietLog})
		require.NoError(t, err)
		assert.Zero(t, waited)
	})
}

// TestCheckDeadBackendAllowsTheShimsOwnUpstream: a non-loopback upstream is
// asked only when the caller allows it.
func TestCheckDeadBackendAllowsTheShimsOwnUpstream(t *testing.T) {
	own, err := url.Parse("http://gpu-host-1:8188")
	require.NoError(t, err)
	b := gpulock.Backend{Profile: "comfyui", Upstream: "http://gpu-host-1:8188/"}
	_, err = checkDeadBackend(b, nil)
	require.Error(t, err)
	_, err = checkDeadBackend(b, []*url.URL{own})
	require.NoError(t, err)
	_, err = checkDeadBackend(gpulock.Backend{Profile: "comfyui", Upstream: "http://localhost:8188"}, nil)
	require.NoError(t, err)
}

// TestWaitDeadHolderOnce asks once: a busy backend gives ErrDeadHolderBusy
// at once (the dead holder's description kept), an idle one nil.
func TestWaitDeadHolderOnce(t *testing.T) {
	b := &busyBackend{}
	b.busy.Store(true)
	srv := httptest.NewServer(b)
	defer srv.Close()
	dir := t.TempDir()
	leaveDeadHolder(t, dir, "comfyui", srv.URL)
	l, h := takeLock(t, dir)
	_, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Once: true, Logger: quietLog})
	require.ErrorIs(t, err, ErrDeadHolderBusy)
	assert.Equal(t, int64(1), b.asked.Load())
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "dead-comfyui", st.Holder.Service)

	b.busy.Store(false)
	_, err = WaitDeadHolder(context.Background(), h, DeadHolderOptions{Once: true, Logger: quietLog})
	require.NoError(t, err)
}

// FuzzCheckDeadBackend feeds checkDeadBackend what any local user could
// write into a lock file: whatever it accepts is an http(s) URL without user
// info on a loopback address.
func FuzzCheckDeadBackend(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8188", "http://localhost:7860/", "http://[::1]:1", "http://10.0.0.1:80",
		"http://127.0.0.1.nip.io:80", "http://u:p@127.0.0.1:1", "http://127.0.0.1%2f@evil:80", "unix:///run/x", "http://0x7f.1:80"} {
		f.Add("comfyui", s)
	}
	f.Fuzz(func(t *testing.T, profile, upstream string) {
		b, err := checkDeadBackend(gpulock.Backend{Profile: profile, Upstream: upstream}, nil)
		if err != nil {
			return
		}
		require.Contains(t, []string{"comfyui", "a1111"}, b.profile)
		require.Contains(t, []string{"http", "https"}, b.base.Scheme)
		require.Nil(t, b.base.User)
		host := b.base.Hostname()
		ip := net.ParseIP(host)
		require.True(t, strings.EqualFold(host, "localhost") || (ip != nil && ip.IsLoopback()), "accepted %q", upstream)
	})
}

// TestWaitDeadHolderAfterHoldersThatDidNotLook forces the interleaving that
// overlapped jobs: a shim dies while its backend is busy, a restarted
// shim's start-up check takes the lock and releases it, another holder dies
// without looking; the next shim still finds the dead shim's backend and
// waits for it.
func TestWaitDeadHolderAfterHoldersThatDidNotLook(t *testing.T) {
	b := &busyBackend{}
	b.busy.Store(true)
	srv := httptest.NewServer(b)
	defer srv.Close()
	dir := t.TempDir()
	leaveDeadHolder(t, dir, "a1111", srv.URL)
	check, err := gpulock.New(0, gpulock.WithDir(dir), gpulock.WithService("restarted"))
	require.NoError(t, err)
	h, err := check.TryAcquire()
	require.NoError(t, err)
	require.NoError(t, h.Release()) // the restarted shim's start-up check
	h, err = check.TryAcquire()
	require.NoError(t, err)
	require.NoError(t, h.Disown()) // a holder that dies before it looks

	_, h = takeLock(t, dir)
	done := make(chan error, 1)
	go func() {
		_, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Timeout: eventTimeout, Logger: quietLog})
		done <- err
	}()
	waitFor(t, "the dead shim's backend to be asked twice", func() bool { return b.asked.Load() >= 2 })
	select {
	case err := <-done:
		t.Fatalf("went ahead while the dead shim's backend was busy: %v", err)
	default:
	}
	b.busy.Store(false)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(eventTimeout):
		t.Fatal("still waiting after the backend became idle")
	}
}

// flickerBackend is a ComfyUI whose /queue answers from script first (true:
// busy), then busy while busy is set: a job the dead holder had just
// forwarded that shows only after a first idle answer.
type flickerBackend struct {
	mu     sync.Mutex
	script []bool
	busy   atomic.Bool
	asked  atomic.Int64
}

func (f *flickerBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.asked.Add(1)
	f.mu.Lock()
	busy := f.busy.Load()
	if len(f.script) > 0 {
		busy, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if busy {
		_, _ = io.WriteString(w, `{"queue_running": [], "queue_pending": [[0, "p1", {}, {}, []]]}`)
		return
	}
	_, _ = io.WriteString(w, `{"queue_running": [], "queue_pending": []}`)
}

// TestWaitDeadHolderWantsTwoIdleAnswers: one idle answer followed by a busy
// one (the dead holder's last prompt had not shown yet) is no reason to go
// ahead, with or without Once; two in a row are.
func TestWaitDeadHolderWantsTwoIdleAnswers(t *testing.T) {
	f := &flickerBackend{script: []bool{false, true}}
	f.busy.Store(true)
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir := t.TempDir()
	leaveDeadHolder(t, dir, "comfyui", srv.URL)
	l, h := takeLock(t, dir)
	_, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Once: true, Logger: quietLog})
	require.ErrorIs(t, err, ErrDeadHolderBusy, "an idle answer, then a busy one")
	assert.Equal(t, int64(2), f.asked.Load())
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "dead-comfyui", st.Holder.Service, "still kept")

	f.mu.Lock()
	f.script = []bool{false, true, false, true}
	f.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := WaitDeadHolder(context.Background(), h, DeadHolderOptions{Timeout: eventTimeout, Logger: quietLog})
		done <- err
	}()
	waitFor(t, "the script to be answered and the backend asked once more", func() bool { return f.asked.Load() >= 2+5 })
	select {
	case err := <-done:
		t.Fatalf("went ahead on idle answers that were not in a row: %v", err)
	default:
	}
	f.busy.Store(false)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(eventTimeout):
		t.Fatal("still waiting after the backend became idle")
	}
	assert.GreaterOrEqual(t, f.asked.Load(), int64(2+5+2), "two idle answers in a row at the end")
	st, err = l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "next", st.Holder.Service)
}
