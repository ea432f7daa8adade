package gpulock

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// AcquireAny takes one lock of locks: a free one at once if there is one
// (the first free in the order given), otherwise whichever is released
// first, waiting in line on all of them at the same time. The returned
// Handle says which (Handle.Lock, Handle.GPU). If ctx is done first it
// returns an error wrapping ctx.Err() and holds nothing.
func AcquireAny(ctx context.Context, locks []*Lock) (*Handle, error) {
	if len(locks) == 0 {
		return nil, errors.New("gpulock: AcquireAny needs at least one lock")
	}
	for _, l := range locks {
		h, err := l.TryAcquire()
		if err == nil {
			return h, nil
		}
		if !errors.Is(err, ErrBusy) {
			return nil, err
		}
	}
	if len(locks) == 1 {
		return locks[0].Acquire(ctx)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, len(locks))
	var wg sync.WaitGroup
	for _, l := range locks {
		wg.Go(func() {
			h, err := l.Acquire(ctx)
			results <- result{h: h, err: err}
		})
	}
	var won *Handle
	var firstErr error
	for range locks {
		r := <-results
		switch {
		case r.h != nil && won == nil:
			won = r.h
			cancel() // the others give up their places
		case r.h != nil:
			_ = r.h.Release() // a second grant as we won: not wanted
		case firstErr == nil && !errors.Is(r.err, context.Canceled):
			firstErr = r.err
		}
	}
	wg.Wait()
	if won != nil {
		return won, nil
	}
	if err := context.Cause(ctx); err != nil && firstErr == nil {
		return nil, fmt.Errorf("gpulock: gave up waiting for any of %d locks: %w", len(locks), err)
	}
	return nil, firstErr
}
