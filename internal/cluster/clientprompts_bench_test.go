package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// BenchmarkClientPromptsIn10000 reads one client's 2 running prompts
// while 10,000 prompts of others wait in line: through the client's index
// (ClientPrompts, what interrupt by client does now) and, for reference in
// the same run, by reading every unfinished prompt (what it did before).
func BenchmarkClientPromptsIn10000(b *testing.B) {
	r := redistest.Start(b)
	rdb, err := Dial(r.URL())
	require.NoError(b, err)
	b.Cleanup(func() { _ = rdb.Close() })
	s := NewStore(rdb)
	ctx := context.Background()
	pipe := s.rdb.Pipeline()
	for i := range 10_000 {
		id := fmt.Sprintf("w%d", i)
		pipe.HSet(ctx, keyCPrompt(id), "state", PromptWaiting, "body", `{"client_id":"bob"}`, "number", i)
		pipe.ZAdd(ctx, keyCActive, redis.Z{Score: float64(i), Member: id})
	}
	_, err = pipe.Exec(ctx)
	require.NoError(b, err)
	for i, id := range []string{"a1", "a2"} {
		_, err := s.AddPrompt(ctx, id, "j"+id, "gw", []byte(`{"client_id":"alice"}`))
		require.NoError(b, err)
		_, _, err = s.PromptNeeds(ctx, id, "alice", fmt.Sprintf("http://127.0.0.1:%d", i+1), nil)
		require.NoError(b, err)
		require.NoError(b, s.PromptDispatched(ctx, id, "m/0/comfyui", fmt.Sprintf("http://127.0.0.1:%d", i+1)))
	}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			ps, err := s.ClientPrompts(ctx, "alice")
			if err != nil || len(ps) != 2 {
				b.Fatal(len(ps), err)
			}
		}
	})
	b.Run("scan-reference", func(b *testing.B) {
		for b.Loop() {
			ids, err := s.ActivePrompts(ctx)
			require.NoError(b, err)
			n := 0
			for _, id := range ids {
				p, found, err := s.LookupPrompt(ctx, id)
				require.NoError(b, err)
				if found && p.State == PromptRunning && string(p.Body) == `{"client_id":"alice"}` {
					n++
				}
			}
			if n != 2 {
				b.Fatal(n)
			}
		}
	})
}
