package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func promptBody(steps int, seed int64) string {
	return fmt.Sprintf(`{"prompt":%s,"client_id":"test"}`, fakecomfy.TextToImagePrompt(steps, seed))
}

// historyDone reports whether /history/{id} through the gateway lists the prompt.
func historyDone(t testing.TB, base, id string) bool {
	t.Helper()
	resp, err := http.Get(base + "/history/" + id)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var doc map[string]json.RawMessage
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &doc)
	_, ok := doc[id]
	return resp.StatusCode == http.StatusOK && ok
}

func TestComfyPromptsGetAnIDWaitInLineAndHistoryFindsThem(t *testing.T) {
	e := newCluster(t, 2, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	const prompts = 6
	ids := make([]string, prompts)
	var wg sync.WaitGroup
	for i := range prompts {
		wg.Go(func() {
			code, _, body := post(t, gw+"/prompt", promptBody(4, int64(i)))
			require.Equal(t, http.StatusOK, code, body)
			var doc struct {
				PromptID string `json:"prompt_id"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &doc))
			ids[i] = doc.PromptID
		})
	}
	wg.Wait()
	for _, id := range ids {
		require.NotEmpty(t, id)
		waitFor(t, "prompt "+id+" in its machine's history", func() bool { return historyDone(t, gw, id) })
	}
	total := int64(0)
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Zero(t, st.Overlaps, "overlaps on %s: %+v", m.name, st.OverlapRecords)
		assert.Positive(t, st.Jobs, "%s ran no prompt", m.name)
		total += st.Jobs
	}
	assert.Equal(t, int64(prompts), total)
}

func TestComfyPromptIsAnsweredAtOnceAndTheGPUStaysBusyUntilItEnds(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	start := time.Now()
	var ids []string
	for i, steps := range []int{20, 1} { // 200 ms of work, then 10 ms
		code, _, body := post(t, gw+"/prompt", promptBody(steps, int64(i)))
		require.Equal(t, http.StatusOK, code, body)
		var doc struct {
			PromptID string `json:"prompt_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &doc))
		require.NotEmpty(t, doc.PromptID)
		ids = append(ids, doc.PromptID)
	}
	// Both were answered while the first still runs: the second waits in
	// the cluster's line, since the GPU is busy from dispatch until the
	// first prompt ends.
	n, err := e.store.Client().ZCard(t.Context(), "gpulock:line").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the second prompt waits in line")
	for _, id := range ids {
		waitFor(t, "prompt "+id+" done", func() bool { return historyDone(t, gw, id) })
	}
	assert.GreaterOrEqual(t, time.Since(start), 21*stepDuration)
	st, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Overlaps)
	assert.Equal(t, int64(2), st.Jobs)
}
