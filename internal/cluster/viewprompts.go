package cluster

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// runningPrompts maps each ComfyUI member to the prompt dispatched to it
// that has not ended (the first, oldest, of the cluster's active prompts
// within viewScanMax), for View: a prompt's job leaves Redis once the
// shim has taken it, its prompt record stays until it ends.
func (s *Store) runningPrompts(ctx context.Context) (map[string]string, error) {
	ids, err := s.rdb.ZRange(ctx, keyCActive, 0, viewScanMax-1).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	out := map[string]string{}
	for from := 0; from < len(ids); from += viewChunk {
		chunk := ids[from:min(from+viewChunk, len(ids))]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = pipe.HMGet(ctx, keyCPrompt(id), "state", "gpu")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, redisErr(err)
		}
		for i, c := range cmds {
			f := c.Val()
			if len(f) != 2 || f[0] != PromptRunning {
				continue
			}
			if gpu, _ := f[1].(string); gpu != "" && out[gpu] == "" {
				out[gpu] = chunk[i]
			}
		}
	}
	return out, nil
}
