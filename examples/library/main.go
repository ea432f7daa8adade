// Command library is a small program that uses the gpulock library: it
// takes a free GPU of a set, runs its work there, and gives the GPU back.
//
//	go run ./examples/library --gpus 0-1 --work 2s
//
// Run it twice at once with one GPU: the second waits for the first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "library example:", err)
		os.Exit(1)
	}
}

func run() error {
	gpus := flag.String("gpus", "0", "GPU set to choose from: 0, 0,2, 0-3 or any")
	work := flag.Duration("work", time.Second, "how long the pretend work takes")
	wait := flag.Duration("wait", time.Minute, "how long to wait for a GPU at most")
	flag.Parse()

	set, err := gpulock.ParseGPUSet(*gpus)
	if err != nil {
		return err
	}
	var locks []*gpulock.Lock
	for _, g := range set {
		l, err := gpulock.New(g, gpulock.WithService("library-example"))
		if err != nil {
			return err
		}
		locks = append(locks, l)
	}

	// Ctrl-C ends the wait; the deadline bounds it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()

	start := time.Now()
	h, err := gpulock.AcquireAny(ctx, locks)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no GPU of %s became free within %s", *gpus, *wait)
	case err != nil:
		return err
	}
	defer h.Release()
	fmt.Printf("got GPU %d after %s\n", h.GPU(), time.Since(start).Round(time.Millisecond))

	select { // the work: a real program would launch its CUDA job on h.GPU()
	case <-time.After(*work):
	case <-ctx.Done():
	}
	fmt.Printf("done with GPU %d\n", h.GPU())
	return nil
}
