package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
)

// Options sizes the demo.
type Options struct {
	// GPUs is the number of simulated GPUs (default 1).
	GPUs int
	// JobsPerService is the number of jobs each service gets per GPU (default 12).
	JobsPerService int
	// Clients is the number of concurrent clients per service and GPU (default 4).
	Clients int
	// Step is one simulated sampling step (default 20ms); a job takes 6-14 steps.
	Step time.Duration
	// Out receives the progress and the summary (default os.Stdout).
	Out io.Writer
	// Live redraws one progress line in place (for a terminal); otherwise
	// progress is printed as plain lines now and then.
	Live bool
	// Dir holds the lock and simulation files (default: a new temporary
	// directory, removed at the end).
	Dir string
	// LockDir, if set, holds the shims' lock files instead of Dir, so that
	// `gpulock status --lock-dir LockDir` shows the demo's GPUs.
	LockDir string
	// Hold keeps the shims of the run with gpulock, and their status pages,
	// serving after the demo until ctx ends; Run then returns the report
	// with no error.
	Hold bool
}

func (o Options) withDefaults() Options {
	if o.GPUs <= 0 {
		o.GPUs = 1
	}
	if o.JobsPerService <= 0 {
		o.JobsPerService = 12
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Step <= 0 {
		o.Step = 20 * time.Millisecond
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	return o
}

// Report is the outcome of both runs.
type Report struct {
	With, Without RunReport
}

// Run runs the demo: the load through gpulock shims, then without them.
// It returns early, with ctx's error, when ctx ends.
func Run(ctx context.Context, opts Options) (Report, error) {
	opts = opts.withDefaults()
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "gpulock-demo-")
		if err != nil {
			return Report{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fmt.Fprintf(opts.Out, "gpulock demo: %d simulated GPU(s) of %d GiB; on each a fake ComfyUI (model %d GiB) and a fake A1111 (model %d GiB);\n",
		opts.GPUs, cardVRAM>>30, comfyModel>>30, a1111Model>>30)
	fmt.Fprintf(opts.Out, "A running job needs %d GiB (ComfyUI) or %d GiB (A1111) more: two jobs at once overlap, or run out of memory.\n",
		comfyWorking>>30, a1111Working>>30)
	fmt.Fprintf(opts.Out, "Load: %d ComfyUI prompts and %d A1111 txt2img jobs per GPU, %d clients each, all at once.\n\n",
		opts.JobsPerService, opts.JobsPerService, opts.Clients)

	var rep Report
	var err error
	fmt.Fprintln(opts.Out, "1/2 with gpulock: a shim in front of each backend")
	var closeWith func()
	rep.With, closeWith, err = runOnce(ctx, opts, dir+"/with", true)
	defer closeWith()
	if err != nil {
		return rep, err
	}
	fmt.Fprintln(opts.Out, "2/2 without gpulock: clients talk to the backends directly")
	var closeWithout func()
	rep.Without, closeWithout, err = runOnce(ctx, opts, dir+"/without", false)
	closeWithout()
	if err != nil {
		return rep, err
	}
	fmt.Fprintln(opts.Out)
	writeSummary(opts.Out, rep)
	if opts.Hold {
		fmt.Fprintln(opts.Out, "\nThe status pages above stay open (--hold); press Ctrl-C to stop.")
		<-ctx.Done()
	}
	return rep, nil
}

// runOnce starts the stacks, runs the load and collects the figures. It
// prints the shims' status pages. With opts.Hold and shims, the stacks keep
// serving until the returned func closes them; otherwise they are closed
// already and the func does nothing. The func is never nil.
func runOnce(ctx context.Context, opts Options, dir string, withShims bool) (RunReport, func(), error) {
	var stacks []*gpuStack
	closeAll := func() {
		for _, st := range stacks {
			st.close()
		}
	}
	rep, err := loadOnce(ctx, opts, dir, withShims, &stacks)
	if opts.Hold && withShims && err == nil {
		return rep, closeAll, nil
	}
	closeAll()
	return rep, func() {}, err
}

// loadOnce is runOnce's work; the stacks it starts go to *stacks.
func loadOnce(ctx context.Context, opts Options, dir string, withShims bool, started *[]*gpuStack) (RunReport, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return RunReport{}, err
	}
	lockDir := dir
	if opts.LockDir != "" {
		lockDir = opts.LockDir
	}
	for g := range opts.GPUs {
		st, err := startStack(g, dir, lockDir, opts.Step, withShims)
		if err != nil {
			return RunReport{}, err
		}
		*started = append(*started, st)
		if withShims {
			fmt.Fprintf(opts.Out, "    status page of GPU %d: %s/gpulock/ (ComfyUI shim), %s/gpulock/ (A1111 shim)\n",
				g, st.comfyURL, st.a1111URL)
		}
	}
	stacks := *started

	rec := newRecorder()
	start := time.Now()
	prog := startProgress(opts, stacks, rec, withShims)
	var wg sync.WaitGroup
	for _, st := range stacks {
		for _, svc := range []string{serviceComfy, serviceA1111} {
			jobs := make(chan int, opts.JobsPerService)
			for i := range opts.JobsPerService {
				jobs <- i
			}
			close(jobs)
			for range opts.Clients {
				wg.Go(func() { runClient(ctx, st, svc, jobs, opts.Step, rec) })
			}
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	prog.stop()
	if err := ctx.Err(); err != nil {
		return RunReport{}, err
	}
	return collect(stacks, rec, elapsed)
}

// runClient is one API client: it takes jobs until there are none left.
func runClient(ctx context.Context, st *gpuStack, service string, jobs <-chan int, step time.Duration, rec *recorder) {
	c := &loadgen.Client{Base: st.a1111URL}
	if service == serviceComfy {
		c.Base = st.comfyURL
	}
	for range jobs {
		if ctx.Err() != nil {
			return
		}
		steps := 6 + rand.IntN(9)
		var res loadgen.Result
		var err error
		if service == serviceComfy {
			_, res, err = c.RunComfy(ctx, fakecomfy.TextToImagePrompt(steps, rand.Int64()))
		} else {
			res, err = c.RunA1111(ctx, steps)
		}
		rec.add(st.index, service, res, err)
	}
}
