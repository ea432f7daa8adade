package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Position returns a waiting job's place in the cluster's line, 1 for the
// next to go; found is false when the job does not wait (matched, running,
// ended or unknown).
func (s *Store) Position(ctx context.Context, job string) (pos int64, found bool, err error) {
	r, err := s.rdb.ZRank(ctx, prefix+"line", job).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, redisErr(err)
	}
	return r + 1, true, nil
}

// LiveGPU is one live GPU member of a profile.
type LiveGPU struct {
	// ID is "node/gpu/profile"; URL its shim's advertise URL.
	ID, URL string
}

// LiveGPUs returns the live GPUs serving profile, sorted by id (node
// name, then GPU number as text): a stable order every gateway sees alike.
func (s *Store) LiveGPUs(ctx context.Context, profile string) ([]LiveGPU, error) {
	gpus, err := s.rdb.SMembers(ctx, keyGPUs(profile)).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	slices.Sort(gpus)
	var out []LiveGPU
	for _, g := range gpus {
		v, err := s.rdb.Get(ctx, keyReg(g)).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, redisErr(err)
		}
		if _, url, ok := strings.Cut(v, "\n"); ok {
			out = append(out, LiveGPU{ID: g, URL: url})
		}
	}
	return out, nil
}

// StopPending takes a prompt that still waits in line out of the line, as
// ComfyUI's /interrupt of a prompt not yet started: unlike DeletePending
// the prompt stays, for its caller to end with PromptFinished (an
// interrupted entry). It reports false when the prompt is not waiting.
func (s *Store) StopPending(ctx context.Context, id string) (bool, error) {
	p, found, err := s.LookupPrompt(ctx, id)
	if err != nil || !found || p.State != PromptWaiting {
		return false, err
	}
	// Mark first, as DeletePending: its gateway must not queue it again.
	if err := s.rdb.Set(ctx, keyCDeleted(p.Job), id, jobTTL).Err(); err != nil {
		return false, redisErr(err)
	}
	ok, err := s.Cancel(ctx, p.Job)
	if err != nil || !ok {
		_ = s.rdb.Del(ctx, keyCDeleted(p.Job)).Err()
		return false, err
	}
	if err := s.rdb.ZRem(ctx, keyCPending, id).Err(); err != nil {
		return true, redisErr(err)
	}
	return true, nil
}

// PromptToFront gives a prompt whose "front" was honoured (Turn.Front) the
// number ComfyUI gives one, minus its number, so that it comes before every
// other pending prompt in /queue, as it does in the line; it returns the
// new number (the prompt's number unchanged if it is not positive).
func (s *Store) PromptToFront(ctx context.Context, id string) (int64, error) {
	v, err := s.run(ctx, scriptPromptToFront, id)
	if err != nil {
		return 0, err
	}
	n, _ := v.(int64)
	return n, nil
}

// scriptPromptToFront: ARGV: prefix, prompt id. Returns the number.
var scriptPromptToFront = redis.NewScript(`
local P, id = ARGV[1], ARGV[2]
local k = P..'cprompt:'..id
local n = tonumber(redis.call('HGET', k, 'number') or '0')
if n <= 0 then return n end
n = -n
redis.call('HSET', k, 'number', n)
if redis.call('ZSCORE', P..'cpending', id) then redis.call('ZADD', P..'cpending', n, id) end
return n
`)
