package gateway

import (
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMixedBurstOnSharedGPUsNeverOverlaps(t *testing.T) {
	e := newCluster(t, 3, []string{"comfyui", "a1111"}, nil)
	waitFor(t, "every member free", func() bool {
		return e.freeCount(t, "a1111") == 3 && e.freeCount(t, "comfyui") == 3
	})
	var wg sync.WaitGroup
	const each = 8
	for i := range each {
		wg.Go(func() {
			code, _, body := post(t, e.gateways["comfyui"].URL+"/prompt", promptBody(3, int64(i)))
			assert.Equal(t, http.StatusOK, code, body)
		})
		wg.Go(func() {
			code, _, body := post(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", `{"steps":3}`)
			assert.Equal(t, http.StatusOK, code, body)
		})
	}
	wg.Wait()
	waitFor(t, "every prompt done", func() bool {
		var n int64
		for _, m := range e.machines {
			st, err := m.gpu.Stats()
			require.NoError(t, err)
			if len(st.Running) > 0 {
				return false
			}
			n += st.Jobs
		}
		return n == 2*each
	})
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Zero(t, st.Overlaps, "overlaps on %s: %+v", m.name, st.OverlapRecords)
		assert.Positive(t, st.Jobs, "%s ran nothing", m.name)
	}
}
