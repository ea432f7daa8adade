package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// post sends a JSON body and returns the status, the GPU header and the body.
func post(t testing.TB, url, body string) (int, string, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(HeaderGPU), string(b)
}

func TestA1111BurstRunsEveryJobOnceWithoutOverlap(t *testing.T) {
	e := newCluster(t, 3, []string{"a1111"}, nil)
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "a1111") == 3 })
	const jobs = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	perGPU := map[string]int{}
	for i := range jobs {
		wg.Go(func() {
			code, gpu, body := post(t, e.gateways["a1111"].URL+"/sdapi/v1/txt2img", fmt.Sprintf(`{"steps":%d}`, 3+i%3))
			assert.Equal(t, http.StatusOK, code, body)
			mu.Lock()
			perGPU[gpu]++
			mu.Unlock()
		})
	}
	wg.Wait()
	total := 0
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Zero(t, st.Overlaps, "overlaps on %s: %+v", m.name, st.OverlapRecords)
		total += int(st.Jobs)
		assert.Positive(t, perGPU[m.name+"/0/a1111"], "no job ran on %s: %v", m.name, perGPU)
	}
	assert.Equal(t, jobs, total, "every job ran once")
}

func TestNoLiveMachineAnswers503AtOnce(t *testing.T) {
	e := newCluster(t, 0, nil, nil)
	g, err := New(Config{Profile: "a1111", Store: e.store, Logger: quietLogger()})
	require.NoError(t, err)
	g.Start()
	defer g.Close()
	srv := httptestServer(t, g)
	resp, err := http.Post(srv+"/sdapi/v1/txt2img", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	b, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(b), "no_machine")
}
