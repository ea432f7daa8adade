package shim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// coverState reads the cover's state under its lock.
func coverState(c *cover) (wanted, waiting, holding bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wanted, c.waiting, c.hd != nil
}

// The backend's own work runs whether or not the shim gets the lock for it,
// so the shim's wait on its behalf is bound by neither --queue-timeout nor
// --max-queue: it waits while another service holds the GPU and covers the
// work as soon as the GPU is free.
func TestCoverIsNotBoundByTheQueueTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.QueueTimeout = 50 * time.Millisecond
		c.MaxQueue = 1
	})
	release := holdGPU(t, e.a1111Shim)     // another service holds the GPU
	jobDone := e.a1111.StartLocalJob(1000) // an extension's job, about 5 s

	waitFor(t, "the shim to wait for the GPU on A1111's behalf", func() bool {
		wanted, waiting, _ := coverState(e.a1111Shim.cover)
		return wanted && waiting
	})
	// Longer than the queue timeout: the wait goes on.
	time.Sleep(4 * e.a1111Shim.cfg.QueueTimeout) // a measured interval, not a synchronisation
	wanted, waiting, _ := coverState(e.a1111Shim.cover)
	require.True(t, wanted && waiting, "the wait on the backend's behalf outlasts --queue-timeout")

	release() // the other service is done; A1111's own job still runs
	waitFor(t, "the shim to hold the GPU for A1111's own job", func() bool {
		_, _, holding := coverState(e.a1111Shim.cover)
		return holding
	})
	select {
	case err := <-jobDone:
		require.NoError(t, err)
		t.Fatal("the job ended before the shim covered it")
	default:
	}
	e.a1111.Interrupt()
	require.NoError(t, <-jobDone)
	waitFor(t, "the cover to end with the job", func() bool {
		_, _, holding := coverState(e.a1111Shim.cover)
		return !holding
	})
}
