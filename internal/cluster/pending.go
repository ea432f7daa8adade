package cluster

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// StopPending takes a prompt that still waits in line out of the line, as
// ComfyUI's /interrupt of a prompt not yet started: unlike DeletePending
// the prompt stays, for its caller to end with PromptFinished (an
// interrupted entry). It reports false when the prompt is not waiting.
func (s *Store) StopPending(ctx context.Context, id string) (bool, error) {
	ok, err := s.takeOutOfLine(ctx, id)
	if err != nil || !ok {
		return false, err
	}
	if err := s.rdb.ZRem(ctx, keyCPending, id).Err(); err != nil {
		return true, redisErr(err)
	}
	return true, nil
}

// takeOutOfLine takes waiting prompt id's job out of the line, for
// DeletePending and StopPending; false when the prompt is not waiting (or
// its job was matched meanwhile). It marks the job deleted first, so that
// the gateway waiting for it sees it gone and does not queue it again.
func (s *Store) takeOutOfLine(ctx context.Context, id string) (bool, error) {
	p, found, err := s.LookupPrompt(ctx, id)
	if err != nil || !found || p.State != PromptWaiting {
		return false, err
	}
	if err := s.rdb.Set(ctx, keyCDeleted(p.Job), id, jobTTL).Err(); err != nil {
		return false, redisErr(err)
	}
	ok, err := s.Cancel(ctx, p.Job)
	if err != nil || !ok {
		_ = s.rdb.Del(ctx, keyCDeleted(p.Job)).Err()
		return false, err
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
