package shim

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mixedLoad runs comfy and a1111 jobs concurrently against the two base
// URLs, plus clients that give up while queued or while running. It returns
// the number of jobs that must have completed and the errors seen.
func mixedLoad(t *testing.T, comfyBase, a1111Base string, jobsEach int) []error {
	t.Helper()
	var mu sync.Mutex
	var errs []error
	record := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for i := range jobsEach {
		wg.Go(func() {
			_, err := client(comfyBase).ComfyPrompt(context.Background(), fakecomfy.TextToImagePrompt(3, int64(i)))
			record(err)
		})
		wg.Go(func() { record(client(a1111Base).A1111Txt2Img(context.Background(), 3)) })
	}
	// Clients that leave: a1111 ones with a short deadline, while queued or
	// while their job runs.
	for range jobsEach / 2 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*stepDuration)
			defer cancel()
			err := client(a1111Base).A1111Txt2Img(ctx, 6)
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				record(err)
			}
		})
	}
	wg.Wait()
	return errs
}

func TestMixedLoadThroughShimsNeverOverlaps(t *testing.T) {
	e := newEnv(t)
	errs := mixedLoad(t, e.comfyVia, e.a1111Via, 12)
	require.Empty(t, errs)
	waitFor(t, "the shims to let go of the GPU", func() bool { return e.comfyShim.watch.count() == 0 })
	st := e.stats(t)
	assert.Zero(t, st.Overlaps, "overlaps: %+v", st.OverlapRecords)
	assert.GreaterOrEqual(t, st.Jobs, int64(24))
	assert.Zero(t, st.OOMs)
}

func TestMixedLoadWithoutShimsOverlaps(t *testing.T) {
	// The same load straight at the backends: proof the check can fail.
	e := newEnv(t)
	errs := mixedLoad(t, e.comfyURL, e.a1111URL, 12)
	require.Empty(t, errs)
	assert.Positive(t, e.stats(t).Overlaps)
}
