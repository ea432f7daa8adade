package gateway

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// TestAdoptionWhoseAnswerWasLostIsTakenUp: a gateway's adoption of a gone
// gateway's prompt ran in Redis but its answer was lost (Redis died as it
// answered, or was slow past the round's bound): Redis says the prompt is
// this gateway's, though no goroutine here has it. A later round takes it
// up, and it runs once (seen in the chaos test as a prompt pending for
// ever, its job matched with a GPU nobody dispatched it to).
func TestAdoptionWhoseAnswerWasLostIsTakenUp(t *testing.T) {
	e := newComfyCluster(t, 1, nil, nil)
	waitFor(t, "the GPU free", func() bool { return e.freeCount(t, "comfyui") == 1 })
	g, err := New(Config{Profile: "comfyui", Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()})
	require.NoError(t, err)
	ctx := t.Context()

	// A gateway that is gone left a prompt waiting in line.
	const id = "0d6f6c1e-0000-4000-8000-000000000003"
	body := fmt.Sprintf(`{"prompt":%s,"client_id":"test","prompt_id":%q}`, fakecomfy.TextToImagePrompt(2, 7), id)
	_, err = e.store.AddPrompt(ctx, id, "lost-adoption-job", "gone-gateway", []byte(body))
	require.NoError(t, err)
	// The adoption whose answer was lost: Redis made it g's already.
	a, err := e.store.AdoptPrompt(ctx, id, g.id)
	require.NoError(t, err)
	require.Equal(t, cluster.Adopted, a)

	g.Start()
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	waitFor(t, "the prompt taken up and run", func() bool { return historyDone(t, srv.URL, id) })
	st, _ := historyStatus(t, srv.URL, id)
	assert.Equal(t, "success", st)
	stats, err := e.machines[0].gpu.Stats()
	require.NoError(t, err)
	assert.Equal(t, int64(1), stats.Jobs, "run once")
}
