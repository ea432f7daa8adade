package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/statuspage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readStatus(t *testing.T, s *Shim) Status {
	t.Helper()
	st, err := s.status()
	require.NoError(t, err)
	return st
}

func TestPageEstimatesTheStartFromRecentJobs(t *testing.T) {
	backend, _ := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) {
		c.GPURoutes = []Route{mustRoute("POST /generate", holdRequest)}
	})
	for range 2 {
		resp, _ := postJSON(t, front.URL+"/generate", `{}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	st := readStatus(t, s)
	require.Len(t, st.Shim.Recent, 2)
	assert.Equal(t, outcomeDone, st.Shim.Recent[0].Result)
	assert.Equal(t, 2, st.Shim.MeanOf)
	assert.True(t, st.Shim.Backend.Up, "a generic backend that answered is up")

	release := holdGPU(t, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		postJSON(t, front.URL+"/generate", `{}`)
	}()
	waitFor(t, "one request in line", func() bool { return s.line.len() == 1 })
	st = readStatus(t, s)
	require.Len(t, st.Shim.Queue, 1)
	require.NotNil(t, st.Shim.Queue[0].EstimatedStartSeconds, "an estimate once jobs finished")
	// Next in line behind a holder that is not the shim's: the mean run length.
	assert.InDelta(t, st.Shim.MeanJobSeconds, *st.Shim.Queue[0].EstimatedStartSeconds, 1e-9)
	release()
	<-done
}

func TestPageWarnsOfAHoldPastMaxHold(t *testing.T) {
	backend, _ := countingBackend(t)
	s, _ := startShim(t, t.TempDir(), "generic", backend.URL, func(c *Config) { c.MaxHold = 20 * time.Millisecond })
	release := holdGPU(t, s)
	defer release()
	waitFor(t, "the max-hold banner", func() bool {
		for _, b := range readStatus(t, s).Shim.Banners {
			if b.Kind == statuspage.BannerMaxHold {
				return true
			}
		}
		return false
	})
}

func TestPageShowsComfyProgressAndVRAM(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PageProbeEvery = 10 * time.Millisecond })
	// No client_id: the shim names its own, so ComfyUI's progress frames reach it.
	body, err := json.Marshal(map[string]any{"prompt": json.RawMessage(promptGraph(200))})
	require.NoError(t, err)
	resp, _ := postJSON(t, e.comfyVia+"/prompt", string(body))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waitFor(t, "progress on the running prompt", func() bool {
		st := readStatus(t, e.comfyShim)
		return len(st.Shim.Running) == 1 && st.Shim.Running[0].Progress != nil && st.Shim.Running[0].Progress.Max == 200
	})
	waitFor(t, "the VRAM", func() bool {
		v := readStatus(t, e.comfyShim).Shim.VRAM
		return v != nil && v.Total > 0 && v.Used > 0
	})
	_, err = http.Post(e.comfyURL+"/interrupt", "application/json", nil)
	require.NoError(t, err)
	waitFor(t, "the prompt done", func() bool { return len(readStatus(t, e.comfyShim).Shim.Recent) == 1 })
}

// An open event stream of the status page must not hold up Serve's
// graceful shutdown until DrainTimeout (eventTimeout here).
func TestServeShutdownEndsTheEventStreams(t *testing.T) {
	backend, _ := countingBackend(t)
	_, base, stop := serveShim(t, t.TempDir(), "generic", backend.URL)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+statuspage.PathEvents, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "event: status\n", line)

	start := time.Now()
	require.NoError(t, stop())
	assert.Less(t, time.Since(start), eventTimeout/2, "Serve returned without waiting out the stream")
}
