package main

import (
	"encoding/json"
	"net/http"
	"syscall"
	"testing"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pageStatus is the part of the shim's /gpulock/status (the page's JSON)
// that `gpulock status` also shows: its own GPU and every GPU of the dir.
type pageStatus struct {
	gpulock.Status
	Shim struct {
		GPUs []gpulock.Status `json:"gpus"`
	} `json:"shim"`
}

// TestStatusWatchAgreesWithThePage: with GPU 0 held and one process in line
// for it, every frame of `gpulock status --watch --json` and the shim's
// page JSON name the same holder pid, service and since, and the same
// waiters in the same order.
func TestStatusWatchAgreesWithThePage(t *testing.T) {
	e := newEnv(t)
	_, base, _ := shimWithFake(t, e)
	holder := e.hold(0, "holder")
	waiter := e.start("exec", "--gpu", "0", "--name", "waiter", "--", "true")
	e.waitWaiters(0, 1)

	c := &http.Client{Timeout: eventTimeout}
	resp, err := c.Get(base + "/gpulock/status")
	require.NoError(t, err)
	var page pageStatus
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	require.NoError(t, err)
	require.Len(t, page.Shim.GPUs, 1)
	require.NotNil(t, page.Holder)
	assert.Equal(t, "holder", page.Holder.Service)

	watch := e.start("status", "--watch", "--json")
	for range 3 {
		var frame []gpulock.Status
		require.NoError(t, json.Unmarshal([]byte(watch.line()), &frame))
		require.Len(t, frame, 1)
		require.Len(t, frame[0].Waiters, 1, "the waiter is in every frame")
		assert.Equal(t, "waiter", frame[0].Waiters[0].Service)
		for _, shown := range []gpulock.Status{page.Status, page.Shim.GPUs[0]} {
			sameLockState(t, frame[0], shown)
		}
	}
	watch.signal(syscall.SIGINT)
	assert.Equal(t, 0, watch.wait())
	holder.signal(syscall.SIGTERM)
	assert.Equal(t, 0, waiter.wait(), "the waiter ran once the holder left")
}

// sameLockState checks that the CLI's and the page's view of one lock agree.
func sameLockState(t *testing.T, cli, page gpulock.Status) {
	t.Helper()
	assert.Equal(t, cli.Name, page.Name)
	assert.Equal(t, cli.Held, page.Held)
	require.NotNil(t, cli.Holder)
	require.NotNil(t, page.Holder)
	assert.Equal(t, cli.Holder.PID, page.Holder.PID, "holder pid")
	assert.Equal(t, cli.Holder.Service, page.Holder.Service, "holder service")
	assert.True(t, cli.Holder.Since.Equal(page.Holder.Since), "holder since: %s vs %s", cli.Holder.Since, page.Holder.Since)
	require.Len(t, page.Waiters, len(cli.Waiters))
	for i, w := range cli.Waiters {
		assert.Equal(t, w.PID, page.Waiters[i].PID, "waiter %d pid", i)
		assert.Equal(t, w.Service, page.Waiters[i].Service, "waiter %d service", i)
		assert.Equal(t, w.Position, page.Waiters[i].Position, "waiter %d position", i)
		assert.True(t, w.Since.Equal(page.Waiters[i].Since), "waiter %d since", i)
	}
}
