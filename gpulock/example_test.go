package gpulock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Take GPU 0, wait at most a minute for it, and give it back when done.
func Example() {
	dir, _ := os.MkdirTemp("", "gpulock-example-")
	defer os.RemoveAll(dir)

	l, err := gpulock.New(0, gpulock.WithDir(dir), gpulock.WithService("trainer"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := l.Acquire(ctx)
	if err != nil {
		log.Fatal(err) // wraps context.DeadlineExceeded after a minute
	}
	defer h.Release()

	st, _ := l.Status()
	fmt.Println(st.Name, "held by", st.Holder.Service)
	// Output: gpu0 held by trainer
}

// Take whichever GPU of 0-3 is free first.
func ExampleAcquireAny() {
	dir, _ := os.MkdirTemp("", "gpulock-example-")
	defer os.RemoveAll(dir)

	gpus, _ := gpulock.ParseGPUSet("0-3")
	var locks []*gpulock.Lock
	for _, g := range gpus {
		l, _ := gpulock.New(g, gpulock.WithDir(dir))
		locks = append(locks, l)
	}
	busy, _ := locks[0].TryAcquire() // somebody is on GPU 0
	defer busy.Release()

	h, err := gpulock.AcquireAny(context.Background(), locks)
	if err != nil {
		log.Fatal(err)
	}
	defer h.Release()
	fmt.Println("got GPU", h.GPU())
	// Output: got GPU 1
}

// TryAcquire keeps "busy" apart from real failures.
func ExampleLock_TryAcquire() {
	dir, _ := os.MkdirTemp("", "gpulock-example-")
	defer os.RemoveAll(dir)
	l, _ := gpulock.New(0, gpulock.WithDir(dir))
	first, _ := l.TryAcquire()
	defer first.Release()

	_, err := l.TryAcquire()
	switch {
	case errors.Is(err, gpulock.ErrBusy):
		fmt.Println("busy: try later")
	case err != nil:
		log.Fatal(err)
	}
	// Output: busy: try later
}
