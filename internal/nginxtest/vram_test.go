package nginxtest

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVRAMHandoff runs a mixed load on one simulated 24 GiB GPU whose two
// backends each keep a 12 GiB model: one job at a time is not enough, the
// models alone leave no room for a job's working memory. With
// --free-on-handoff each backend frees its VRAM before the other's turn.
// Shims and backends are separate processes, as in production: a shim sees
// the other service next in line through the lock's queue.
func TestVRAMHandoff(t *testing.T) {
	big := []string{"--model-gib", "12", "--vram-gib", "24", "--working-gib", "4"}
	for _, tc := range []struct {
		name      string
		shimFlags []string
		wantOOMs  bool
	}{
		{"without --free-on-handoff", nil, true},
		{"with --free-on-handoff", []string{"--free-on-handoff"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startMachineWith(t, 1, 1, big, tc.shimFlags)
			comfy := &loadgen.Client{Base: "http://127.0.0.1:" + strconv.Itoa(m.comfyShim[0])}
			a1111 := &loadgen.Client{Base: "http://127.0.0.1:" + strconv.Itoa(m.a1111Shim[0])}
			ctx, cancel := context.WithTimeout(context.Background(), 2*eventTimeout)
			defer cancel()
			var mu sync.Mutex
			var failures []error
			var wg sync.WaitGroup
			for i := range 3 { // clients per service: both services always have a job in line
				wg.Go(func() {
					for j := range 3 {
						_, err := comfy.ComfyPrompt(ctx, fakecomfy.TextToImagePrompt(3, int64(10*i+j)))
						if err != nil {
							mu.Lock()
							failures = append(failures, err)
							mu.Unlock()
						}
					}
				})
				wg.Go(func() {
					for range 3 {
						if err := a1111.A1111Txt2Img(ctx, 3); err != nil {
							mu.Lock()
							failures = append(failures, err)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			st, err := m.gpu(t, 0).Stats()
			require.NoError(t, err)
			t.Logf("%d jobs began, %d out-of-memory failures, %d client errors", st.Jobs, st.OOMs, len(failures))
			assert.Zero(t, st.Overlaps)
			if tc.wantOOMs {
				assert.Positive(t, st.OOMs, "without the hand-off the models do not fit")
			} else {
				assert.Zero(t, st.OOMs, "the hand-off makes room")
				assert.Empty(t, failures)
				assert.Contains(t, m.shimLogs(), "freed VRAM for the next service")
			}
		})
	}
}
