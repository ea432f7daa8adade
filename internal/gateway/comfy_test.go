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

func TestComfyGPUIsBusyFromDispatchUntilThePromptEnds(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	start := time.Now()
	code, _, body := post(t, gw+"/prompt", promptBody(20, 1)) // 200 ms of work
	require.Equal(t, http.StatusOK, code, body)
	// ComfyUI answered at once; the second prompt waits for the first to end.
	code, _, body = post(t, gw+"/prompt", promptBody(1, 2))
	require.Equal(t, http.StatusOK, code, body)
	assert.GreaterOrEqual(t, time.Since(start), 20*stepDuration, "the second prompt was dispatched only after the first ended")
	st, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Overlaps)
}
