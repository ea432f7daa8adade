package gateway

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A busy local client of a machine (sending straight to its shim) and the
// cluster's line take turns on its GPU: the shim's member waits in the
// local line for the cluster, so that neither starves the other.
func TestLocalClientAndTheClusterLineTakeTurns(t *testing.T) {
	tr := &tracer{runs: map[string][][2]time.Time{}}
	e := newTracedCluster(t, 1, []string{"a1111"}, nil, tr)
	waitFor(t, "the GPU free", func() bool { return e.freeCount(t, "a1111") == 1 })
	m := e.machines[0]
	var wg sync.WaitGroup
	for range 6 {
		sendAs(t, &wg, m.front["a1111"].URL, "L", nil)
	}
	waitFor(t, "five local jobs in the shim's line", func() bool { return m.shims["a1111"].Waiting() == 5 })
	for range 2 {
		sendAs(t, &wg, e.gateways["a1111"].URL, "C", nil)
	}
	e.waitLine(t, 2)
	wg.Wait()
	var order []string
	for _, j := range e.started(t, 8) {
		order = append(order, j.client)
	}
	t.Logf("start order: %v", order)
	// L's first job runs when C's come; then the local line and the
	// cluster's alternate: L C L C L L L L. Without turns the cluster's
	// jobs would start last, at 6 and 7.
	first := slices.Index(order, "C")
	assert.LessOrEqual(t, first, 2, "the cluster's first job in the first turns: %v", order)
	assert.LessOrEqual(t, first+1+slices.Index(order[first+1:], "C"), 4, "its second job one local turn later: %v", order)
}
