package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientPromptsAreTheClientsUnendedOnesOnly indexes prompts of two
// clients in several states among thousands waiting in line, and reads
// back only the unended ones of one client, its ended ones dropped from
// the index.
func TestClientPromptsAreTheClientsUnendedOnesOnly(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	for i := range 2000 { // a line that ClientPrompts must not read
		_, err := s.AddPrompt(ctx, fmt.Sprintf("w%d", i), fmt.Sprintf("jw%d", i), "gw", []byte(`{"client_id":"bob"}`))
		require.NoError(t, err)
	}
	add := func(id, client, url string, state string) {
		t.Helper()
		_, err := s.AddPrompt(ctx, id, "j"+id, "gw", []byte(`{"client_id":"`+client+`"}`))
		require.NoError(t, err)
		_, _, err = s.PromptNeeds(ctx, id, client, url, nil)
		require.NoError(t, err)
		switch state {
		case PromptRunning:
			require.NoError(t, s.PromptDispatched(ctx, id, "m/0/comfyui", url))
		case PromptDone:
			require.NoError(t, s.PromptDispatched(ctx, id, "m/0/comfyui", url))
			require.NoError(t, s.PromptFinished(ctx, id, []byte(`{}`), url, nil))
		}
	}
	add("a1", "alice", "http://127.0.0.1:1", PromptRunning)
	add("a2", "alice", "http://127.0.0.1:2", PromptRunning)
	add("a3", "alice", "http://127.0.0.1:3", PromptDone)
	add("a4", "alice", "http://127.0.0.1:4", PromptWaiting) // its dispatch came to nothing
	add("b1", "bob", "http://127.0.0.1:5", PromptRunning)

	got, err := s.ClientPrompts(ctx, "alice")
	require.NoError(t, err)
	urls := map[string]string{}
	for _, p := range got {
		urls[p.ID] = p.State + " " + p.URL
	}
	assert.Equal(t, map[string]string{"a1": "running http://127.0.0.1:1", "a2": "running http://127.0.0.1:2", "a4": "waiting http://127.0.0.1:4"}, urls)
	idx, err := s.rdb.HKeys(ctx, keyCProms("alice")).Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a1", "a2", "a4"}, idx, "the ended prompt left the index")

	require.NoError(t, s.ClientPromptEnded(ctx, "alice", "a1"))
	got, err = s.ClientPrompts(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.ElementsMatch(t, []string{"a2", "a4"}, []string{got[0].ID, got[1].ID})
	ttl, err := s.rdb.PTTL(ctx, keyCProms("alice")).Result()
	require.NoError(t, err)
	assert.Positive(t, ttl, "the index expires with its prompts")
}

// TestRelayClaimIsOneAtATime checks the relay's claim: a second claimant
// is refused until the first releases; a stale token releases nothing.
func TestRelayClaimIsOneAtATime(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	ok, err := s.ClaimRelay(ctx, "p", "one", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.ClaimRelay(ctx, "p", "two", time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "one relay per prompt")
	require.NoError(t, s.ReleaseRelay(ctx, "p", "two"))
	ok, err = s.ClaimRelay(ctx, "p", "two", time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "another's token releases nothing")
	require.NoError(t, s.RenewRelay(ctx, "p", time.Minute))
	require.NoError(t, s.ReleaseRelay(ctx, "p", "one"))
	ok, err = s.ClaimRelay(ctx, "p", "two", time.Minute)
	require.NoError(t, err)
	assert.True(t, ok)
}
