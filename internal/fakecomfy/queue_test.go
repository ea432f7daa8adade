package fakecomfy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// queueIDs returns the prompt ids of GET /queue's running and pending lists.
func (f *fixture) queueIDs(t *testing.T) (running, pending []string) {
	t.Helper()
	var q struct {
		Running [][]any `json:"queue_running"`
		Pending [][]any `json:"queue_pending"`
	}
	require.Equal(t, http.StatusOK, f.getJSON(t, "/queue", &q))
	for _, it := range q.Running {
		running = append(running, it[1].(string))
	}
	for _, it := range q.Pending {
		pending = append(pending, it[1].(string))
	}
	return running, pending
}

// remaining returns GET /prompt's queue_remaining.
func (f *fixture) remaining(t *testing.T) int {
	t.Helper()
	var p struct {
		ExecInfo struct {
			QueueRemaining int `json:"queue_remaining"`
		} `json:"exec_info"`
	}
	require.Equal(t, http.StatusOK, f.getJSON(t, "/api/prompt", &p))
	return p.ExecInfo.QueueRemaining
}

func TestQueueListDeleteClearAndFront(t *testing.T) {
	f := newFixture(t, nil)
	a := f.submit(t, "", "a", longSteps)
	f.waitRunning(t, a)
	f.submit(t, "", "b", 1)
	f.submit(t, "", "c", 1)
	f.submit(t, "", "d", 1)
	code, body := f.post(t, "/prompt", `{"prompt": `+string(TextToImagePrompt(1, 9))+`, "prompt_id": "front", "front": true}`)
	require.Equal(t, http.StatusOK, code, body)

	running, pending := f.queueIDs(t)
	assert.Equal(t, []string{"a"}, running)
	assert.ElementsMatch(t, []string{"b", "c", "d", "front"}, pending)
	assert.Equal(t, 5, f.remaining(t))

	code, _ = f.post(t, "/queue", `{"delete": ["c", "a"]}`)
	require.Equal(t, http.StatusOK, code)
	running, pending = f.queueIDs(t)
	assert.Equal(t, []string{"a"}, running, "delete touches pending prompts only")
	assert.ElementsMatch(t, []string{"b", "d", "front"}, pending)

	code, _ = f.post(t, "/queue", `{"delete": ["d"]}`)
	require.Equal(t, http.StatusOK, code)
	require.True(t, f.srv.Interrupt(""))
	// "front" jumps ahead of "b".
	f.waitHistory(t, "b")
	f.srv.mu.Lock()
	order := append([]string(nil), f.srv.historyIDs...)
	f.srv.mu.Unlock()
	assert.Equal(t, []string{"a", "front", "b"}, order, "front jumps ahead of b")
	var hist map[string]historyEntry
	require.Equal(t, http.StatusOK, f.getJSON(t, "/history", &hist))
	assert.ElementsMatch(t, []string{"a", "front", "b"}, keys(hist))
	assert.Equal(t, 0, f.remaining(t))

	f.submit(t, "", "e", longSteps)
	f.submit(t, "", "f", 1)
	code, _ = f.post(t, "/queue", `{"clear": true}`)
	require.Equal(t, http.StatusOK, code)
	_, pending = f.queueIDs(t)
	assert.Empty(t, pending)
}

// keys returns a map's keys.
func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
