package cluster

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Each client's prompts sent to a machine are indexed (prompt -> the
// machine's URL) so that what concerns one client (a late websocket, an
// interrupt by client) costs as much as the client's prompts, not the
// cluster's line. The index is written before the dispatch and read
// against each prompt's own record, which is the truth: an entry whose
// prompt ended is dropped when read, and a prompt's end drops it too.

func keyCProms(client string) string { return prefix + "cprom:" + client }

// clientIndexTTL bounds a client's index after its last dispatch: longer
// than a prompt runs, since its entries are dropped when read after their
// prompt ended, and when the prompt ends.
const clientIndexTTL = 24 * time.Hour

func keyCRelay(prompt string) string { return prefix + "crelay:" + prompt }

// notePrompt adds to a pipeline the record that client's prompt goes to
// the machine at url.
func notePrompt(ctx context.Context, p redis.Pipeliner, client, prompt, url string) {
	p.HSet(ctx, keyCProms(client), prompt, url)
	p.PExpire(ctx, keyCProms(client), clientIndexTTL)
}

// ClientPromptEnded drops client's prompt from the client's index.
func (s *Store) ClientPromptEnded(ctx context.Context, client, prompt string) error {
	if client == "" {
		return nil
	}
	if err := s.rdb.HDel(ctx, keyCProms(client), prompt).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// ClientPrompts returns client's prompts sent to a machine that have not
// ended, in two round trips whatever the line holds: those that run
// (State PromptRunning; URL the prompt's own, or the index's) and those
// whose dispatch has not recorded it yet or came to nothing (State
// PromptWaiting, URL the index's). Entries of prompts that ended or
// expired are dropped.
func (s *Store) ClientPrompts(ctx context.Context, client string) ([]Prompt, error) {
	idx, err := s.rdb.HGetAll(ctx, keyCProms(client)).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	if len(idx) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(idx))
	cmds := make([]*redis.MapStringStringCmd, 0, len(idx))
	pipe := s.rdb.Pipeline()
	for id := range idx {
		ids = append(ids, id)
		cmds = append(cmds, pipe.HGetAll(ctx, keyCPrompt(id)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, redisErr(err)
	}
	var out []Prompt
	var gone []string
	for i, id := range ids {
		p, found := promptFrom(id, cmds[i].Val())
		switch {
		case !found || p.State == PromptDone:
			gone = append(gone, id)
		default:
			if p.URL == "" || p.State == PromptWaiting {
				p.URL = idx[id]
			}
			out = append(out, p)
		}
	}
	if len(gone) > 0 {
		_ = s.rdb.HDel(ctx, keyCProms(client), gone...).Err()
	}
	return out, nil
}

// ClaimRelay makes the caller (token) the one relay of prompt's events
// for ttl (renew it with RenewRelay while it relays); false when another
// relays it.
func (s *Store) ClaimRelay(ctx context.Context, prompt, token string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, keyCRelay(prompt), token, ttl).Result()
	if err != nil {
		return false, redisErr(err)
	}
	return ok, nil
}

// RenewRelay extends the relay's claim on prompt by ttl.
func (s *Store) RenewRelay(ctx context.Context, prompt string, ttl time.Duration) error {
	if err := s.rdb.PExpire(ctx, keyCRelay(prompt), ttl).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// scriptRelease deletes a claim if it is still the caller's.
// KEYS: the claim. ARGV: the caller's token.
var scriptRelease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// ReleaseRelay ends the caller's (token) claim on prompt, if it holds it.
func (s *Store) ReleaseRelay(ctx context.Context, prompt, token string) error {
	if err := scriptRelease.Run(ctx, s.rdb, []string{keyCRelay(prompt)}, token).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}
