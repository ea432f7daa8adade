package deadwait

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/deadholdertest"
)

// scriptedBackend answers from a function of the time since its first
// question.
type scriptedBackend struct {
	mu      sync.Mutex
	first   time.Time
	answers []time.Duration // when each question came, since the first
	answer  func(since time.Duration) (bool, error)
}

func (b *scriptedBackend) Busy(context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first.IsZero() {
		b.first = time.Now()
	}
	since := time.Since(b.first)
	b.answers = append(b.answers, since)
	return b.answer(since)
}

func (b *scriptedBackend) Profile() string { return "comfyui" }
func (b *scriptedBackend) Where() string   { return "http://127.0.0.1:1" }

// deadHolderHandle takes GPU 0's lock in a new directory after a holder
// that named a backend died holding it.
func deadHolderHandle(t *testing.T) *gpulock.Handle {
	t.Helper()
	dir := t.TempDir()
	deadholdertest.Leave(t, dir, "shim", "comfyui", "http://127.0.0.1:1")
	_, h := deadholdertest.Take(t, dir, "next")
	return h
}

func checkAs(b Backend) Check { return func(gpulock.Backend) (Backend, error) { return b, nil } }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestWaitSeesAJobThatShowsLate: the dead holder's last job shows at the
// backend only 600 ms after the wait began (idle until then, as a prompt
// ComfyUI still validates): the wait does not go ahead on the idle answers
// before it, and ends after the job.
func TestWaitSeesAJobThatShowsLate(t *testing.T) {
	const shows, ends = 600 * time.Millisecond, 900 * time.Millisecond
	b := &scriptedBackend{answer: func(since time.Duration) (bool, error) {
		return since >= shows && since < ends, nil
	}}
	h := deadHolderHandle(t)
	waited, err := Wait(context.Background(), h, checkAs(b), Options{Timeout: time.Minute, Logger: quiet})
	require.NoError(t, err)
	b.mu.Lock()
	last := b.answers[len(b.answers)-1]
	b.mu.Unlock()
	assert.GreaterOrEqual(t, last, ends, "went ahead before the late job ended")
	assert.GreaterOrEqual(t, waited, Settle)
}

// TestWaitIdleBackendTakesSettle: a backend idle throughout is trusted only
// Settle after the wait began, in answers Poll apart.
func TestWaitIdleBackendTakesSettle(t *testing.T) {
	b := &scriptedBackend{answer: func(time.Duration) (bool, error) { return false, nil }}
	waited, err := Wait(context.Background(), deadHolderHandle(t), checkAs(b), Options{Timeout: time.Minute, Logger: quiet})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, waited, Settle)
	b.mu.Lock()
	defer b.mu.Unlock()
	assert.GreaterOrEqual(t, len(b.answers), int(Settle/Poll), "asked every poll until it settled")
}

// TestWaitDownBackendCountsAtOnce: a backend that no longer listens has no
// job to show: two refusals in a row end the wait without Settle.
func TestWaitDownBackendCountsAtOnce(t *testing.T) {
	b := &scriptedBackend{answer: func(time.Duration) (bool, error) { return false, ErrDown }}
	waited, err := Wait(context.Background(), deadHolderHandle(t), checkAs(b), Options{Timeout: time.Minute, Logger: quiet})
	require.NoError(t, err)
	assert.Less(t, waited, Settle)
	b.mu.Lock()
	defer b.mu.Unlock()
	assert.Len(t, b.answers, IdleAnswers)
}

// TestWaitOnceStillSettles: --nonblock does not wait for a busy backend
// (ErrBusy at the first busy answer), but an idle one is asked until it
// settled, so a job that shows late is still seen.
func TestWaitOnceStillSettles(t *testing.T) {
	b := &scriptedBackend{answer: func(since time.Duration) (bool, error) { return since >= 500*time.Millisecond, nil }}
	_, err := Wait(context.Background(), deadHolderHandle(t), checkAs(b), Options{Timeout: time.Minute, Logger: quiet, Once: true})
	require.ErrorIs(t, err, ErrBusy)
}
