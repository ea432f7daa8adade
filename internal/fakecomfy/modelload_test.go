package fakecomfy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// submitModel posts a prompt that loads ckpt and returns its id.
func (f *fixture) submitModel(t *testing.T, ckpt string) string {
	t.Helper()
	graph := strings.Replace(string(TextToImagePrompt(1, 1)), "v1-5-pruned-emaonly.safetensors", ckpt, 1)
	body, err := json.Marshal(PromptRequest{Prompt: json.RawMessage(graph), ClientID: "c"})
	require.NoError(t, err)
	code, out := f.post(t, "/prompt", string(body))
	require.Equal(t, http.StatusOK, code, out)
	var resp PromptResponse
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	return resp.PromptID
}

func TestModelLoadIsChargedOnlyWhenTheCheckpointChanges(t *testing.T) {
	const load = 60 * time.Millisecond
	f := newFixture(t, func(c *Config) { c.ModelLoad = load })
	took := func(ckpt string) time.Duration {
		start := time.Now()
		f.waitHistory(t, f.submitModel(t, ckpt))
		return time.Since(start)
	}
	assert.GreaterOrEqual(t, took("a.safetensors"), load, "the first load is charged")
	took("a.safetensors") // the same model again: not counted (below)
	assert.GreaterOrEqual(t, took("b.safetensors"), load, "another model is")
	assert.Equal(t, int64(2), f.srv.Counters().ModelLoads)
	code, out := f.post(t, "/free", `{"unload_models": true}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.GreaterOrEqual(t, took("b.safetensors"), load, "after /free the model loads again")
	assert.Equal(t, int64(3), f.srv.Counters().ModelLoads)
}
