package fakecomfy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lastMessage returns the event name of a history entry's last message.
func lastMessage(e historyEntry) string {
	if len(e.Status.Messages) == 0 {
		return ""
	}
	return e.Status.Messages[len(e.Status.Messages)-1][0].(string)
}

func TestHistoryBeforeAndAfterAndInterrupt(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "cl")
	long := f.submit(t, "cl", "long", longSteps)
	short := f.submit(t, "cl", "short", 2)
	f.waitRunning(t, long)

	assert.Empty(t, f.history(t, long), "running prompt has no history")
	assert.Empty(t, f.history(t, short), "pending prompt has no history")
	assert.Empty(t, f.history(t, "unknown"), "unknown id answers {} too")

	code, _ := f.post(t, "/interrupt", `{"prompt_id": "short"}`)
	require.Equal(t, http.StatusOK, code)
	assert.Empty(t, f.history(t, long), "interrupting a prompt that does not run does nothing")

	code, _ = f.post(t, "/api/interrupt", ``)
	require.Equal(t, http.StatusOK, code)
	frames := c.until(promptDone(short))

	var types []string
	for _, fr := range frames {
		types = append(types, fr.Type)
	}
	assert.Contains(t, types, "execution_interrupted")
	assert.Contains(t, types, "execution_success")

	le := f.history(t, long)[long]
	assert.Equal(t, "error", le.Status.StatusStr)
	assert.False(t, le.Status.Completed)
	assert.Equal(t, "execution_interrupted", lastMessage(le))
	assert.Empty(t, le.Outputs)

	se := f.history(t, short)[short]
	assert.Equal(t, "success", se.Status.StatusStr)
	assert.True(t, se.Status.Completed)
	assert.Equal(t, []string{"execution_start", "execution_cached", "execution_success"}, messageNames(se))
	require.Contains(t, se.Outputs, "9")
	img := se.Outputs["9"].(map[string]any)["images"].([]any)[0].(map[string]any)
	assert.Equal(t, "output", img["type"])
	assert.Equal(t, short, se.Prompt[1])

	resp, err := http.Get(f.ts.URL + "/view?filename=" + img["filename"].(string) + "&type=output")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "image/png", resp.Header.Get("Content-Type"))

	counters := f.srv.Counters()
	assert.EqualValues(t, 2, counters.Run)
	assert.EqualValues(t, 1, counters.Succeeded)
	assert.EqualValues(t, 1, counters.Interrupted)

	code, _ = f.post(t, "/history", `{"delete": ["long"]}`)
	require.Equal(t, http.StatusOK, code)
	assert.Empty(t, f.history(t, long))
}

// messageNames returns the event names of a history entry's messages.
func messageNames(e historyEntry) []string {
	var out []string
	for _, m := range e.Status.Messages {
		out = append(out, m[0].(string))
	}
	return out
}
