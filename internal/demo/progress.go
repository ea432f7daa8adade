package demo

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// progressEvery is how often the progress line is redrawn.
const progressEvery = 250 * time.Millisecond

// progress shows, while a run goes on, who holds each GPU, how many wait
// and how many jobs are done.
type progress struct {
	stopOnce sync.Once
	done     chan struct{}
	wg       sync.WaitGroup
	draw     func(final bool)
}

func startProgress(opts Options, stacks []*gpuStack, rec *recorder, withShims bool) *progress {
	total := 2 * opts.JobsPerService * len(stacks)
	p := &progress{done: make(chan struct{})}
	last := time.Time{}
	p.draw = func(final bool) {
		var parts []string
		for _, st := range stacks {
			parts = append(parts, gpuLine(st, withShims))
		}
		line := fmt.Sprintf("%s · %d/%d jobs done", strings.Join(parts, " | "), rec.total(), total)
		switch {
		case opts.Live:
			fmt.Fprintf(opts.Out, "\r\033[K  %s", line)
			if final {
				fmt.Fprintln(opts.Out)
			}
		case final || time.Since(last) >= 2*time.Second:
			fmt.Fprintf(opts.Out, "  %s\n", line)
			last = time.Now()
		}
	}
	p.wg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.draw(false)
			}
		}
	})
	return p
}

// gpuLine describes one GPU: its lock's holder and line, or, without
// gpulock, how many jobs run on it.
func gpuLine(st *gpuStack, withShims bool) string {
	if !withShims {
		s, err := st.gpu.Stats()
		if err != nil {
			return fmt.Sprintf("gpu%d: ?", st.index)
		}
		return fmt.Sprintf("gpu%d: %d job(s) running", st.index, len(s.Running))
	}
	s, err := st.comfyShim.Lock().Status()
	if err != nil {
		return fmt.Sprintf("gpu%d: ?", st.index)
	}
	holder := "free"
	if s.Holder != nil {
		holder = "held by " + s.Holder.Service
	}
	waiting := st.comfyShim.Waiting() + st.a1111Shim.Waiting()
	return fmt.Sprintf("gpu%d: %s, %d waiting", st.index, holder, waiting)
}

// stop ends the progress display with a last line.
func (p *progress) stop() {
	p.stopOnce.Do(func() {
		close(p.done)
		p.wg.Wait()
		p.draw(true)
	})
}
