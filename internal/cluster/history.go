package cluster

import (
	"context"
	"encoding/json"

	"github.com/redis/go-redis/v9"
)

// keyCDone lists the prompts that ended, in the order they ended (as
// ComfyUI's /history), scored by the ending's number.
const keyCDone = prefix + "cdone"

// maxHistory is how many ended prompts /history lists, as ComfyUI keeps.
const maxHistory = 10000

// History is one ended prompt's entry.
type History struct {
	// ID is the prompt_id.
	ID string
	// Entry is its ComfyUI history entry.
	Entry json.RawMessage
}

// markDone lists prompt id as ended; it runs in PromptFinished's pipeline.
func markDone(ctx context.Context, p redis.Pipeliner, id string, n int64) {
	p.ZAdd(ctx, keyCDone, redis.Z{Score: float64(n), Member: id})
	p.ZRemRangeByRank(ctx, keyCDone, 0, -maxHistory-1)
}

// Histories returns the ended prompts' entries, oldest first: the newest
// max (all when max < 0) after skipping offset from the oldest, as
// ComfyUI's GET /history?max_items&offset.
func (s *Store) Histories(ctx context.Context, max, offset int) ([]History, error) {
	ids, err := s.rdb.ZRange(ctx, keyCDone, int64(max0(offset)), -1).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	if max >= 0 && max < len(ids) {
		ids = ids[len(ids)-max:]
	}
	out := make([]History, 0, len(ids))
	for _, id := range ids {
		h, err := s.rdb.HGet(ctx, keyCPrompt(id), "history").Result()
		if err == redis.Nil {
			_ = s.rdb.ZRem(ctx, keyCDone, id).Err() // expired
			continue
		}
		if err != nil {
			return nil, redisErr(err)
		}
		out = append(out, History{ID: id, Entry: json.RawMessage(h)})
	}
	return out, nil
}

// DeleteHistory forgets ended prompts' entries (all of them with clear), as
// ComfyUI's POST /history.
func (s *Store) DeleteHistory(ctx context.Context, ids []string, clear bool) error {
	if clear {
		all, err := s.rdb.ZRange(ctx, keyCDone, 0, -1).Result()
		if err != nil {
			return redisErr(err)
		}
		ids = append(ids, all...)
	}
	for _, id := range ids {
		if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.ZRem(ctx, keyCDone, id)
			p.HDel(ctx, keyCPrompt(id), "history")
			return nil
		}); err != nil {
			return redisErr(err)
		}
	}
	return nil
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}
