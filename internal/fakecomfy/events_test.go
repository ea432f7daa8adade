package fakecomfy

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// describe writes a frame as "type" or "type:detail" for order checks.
func describe(fr Frame) string {
	switch fr.Type {
	case "status":
		q := fr.Data["status"].(map[string]any)["exec_info"].(map[string]any)["queue_remaining"]
		return fmt.Sprintf("status:%v", q)
	case "executing":
		return fmt.Sprintf("executing:%v", fr.Data["node"])
	case "progress":
		return fmt.Sprintf("progress:%v/%v", fr.Data["value"], fr.Data["max"])
	case "executed":
		return "executed:" + fr.Data["node"].(string)
	}
	return fr.Type
}

func TestPromptEventOrderAndRouting(t *testing.T) {
	f := newFixture(t, nil)
	owner := f.dial(t, "owner")
	other := f.dial(t, "other")

	id := f.submit(t, "owner", "p-1", 3)
	require.Equal(t, "p-1", id)
	frames := owner.until(promptDone(id))
	var got []string
	for _, fr := range frames {
		got = append(got, describe(fr))
		if fr.Type != "status" {
			assert.Equal(t, id, fr.Data["prompt_id"], fr.Type)
		}
	}
	assert.Equal(t, []string{
		"status:1", // queued
		"status:1", // taken by the worker
		"execution_start", "execution_cached",
		"executing:5", "executing:4", "executing:7", "executing:6",
		"executing:3", "progress:1/3", "progress:2/3", "progress:3/3",
		"executing:8", "executing:9", "executed:9",
		"execution_success", "status:0", "executing:<nil>",
	}, got)

	// A queue change is a marker: every frame sent before it reaches
	// "other" before the marker, so a leaked per-prompt event would show.
	code, _ := f.post(t, "/queue", `{"clear": true}`)
	require.Equal(t, http.StatusOK, code)
	var otherGot []string
	for range 4 {
		otherGot = append(otherGot, describe(other.next()))
	}
	assert.Equal(t, []string{"status:1", "status:1", "status:0", "status:0"}, otherGot)
}

func TestPromptWithoutClientIDGoesToEveryone(t *testing.T) {
	f := newFixture(t, nil)
	a := f.dial(t, "a")
	b := f.dial(t, "b")
	id := f.submit(t, "", "", 1)
	for _, c := range []*wsConn{a, b} {
		frames := c.until(promptDone(id))
		assert.Equal(t, "execution_success", frames[len(frames)-3].Type)
	}
}

func TestReconnectDuringPromptGetsRunningNode(t *testing.T) {
	f := newFixture(t, nil)
	id := f.submit(t, "late", "", longSteps)
	f.waitRunning(t, id)
	c := f.dial(t, "late")
	fr := c.next()
	assert.Equal(t, "executing", fr.Type)
	assert.Equal(t, id, fr.Data["prompt_id"])
	require.True(t, f.srv.Interrupt(id))
	frames := c.until(promptDone(id))
	assert.Equal(t, "execution_interrupted", frames[len(frames)-3].Type)
}
