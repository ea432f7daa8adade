package execcmd

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// feedbackInterval is how often the live waiting line is refreshed.
const feedbackInterval = time.Second

// feedback tells the person at the terminal that gpulock waits, and for
// whom: on a terminal one live line on stderr, refreshed every second;
// elsewhere one line when the wait starts and one when the lock is taken.
type feedback struct {
	a       *Runner
	quiet   bool
	tty     bool
	done    chan struct{}
	wg      sync.WaitGroup
	stopped sync.Once
}

// startFeedback begins reporting the wait for locks.
func (a *Runner) startFeedback(o execOptions, locks []*gpulock.Lock) *feedback {
	fb := &feedback{a: a, quiet: o.quiet, done: make(chan struct{})}
	if o.quiet {
		return fb
	}
	fd := FDOf(a.Stderr)
	fb.tty = fd >= 0 && IsTerminal(fd)
	pid := os.Getpid()
	line := func() string {
		d := describeLocks(locks, func(st gpulock.Status) string { return describeWait(st, pid) })
		return "gpulock: waiting for " + gpuNoun(o.gpus) + ": " + d
	}
	if !fb.tty {
		fmt.Fprintln(a.Stderr, line())
		return fb
	}
	fb.wg.Go(func() {
		t := time.NewTicker(feedbackInterval)
		defer t.Stop()
		for {
			fmt.Fprint(a.Stderr, "\r\x1b[K"+line())
			select {
			case <-fb.done:
				fmt.Fprint(a.Stderr, "\r\x1b[K")
				return
			case <-t.C:
			}
		}
	})
	return fb
}

// stop ends the live line; it returns once the line is cleared.
func (fb *feedback) stop() {
	fb.stopped.Do(func() { close(fb.done) })
	fb.wg.Wait()
}

// acquired says that the lock was taken after waiting.
func (fb *feedback) acquired(h *gpulock.Handle, waited time.Duration) {
	if fb.quiet {
		return
	}
	fmt.Fprintf(fb.a.Stderr, "gpulock: got GPU %d after waiting %s\n", h.GPU(), Seconds(waited.Seconds()))
}
