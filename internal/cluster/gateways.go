package cluster

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Gateways hold a lease each (gpulock:gw:<id>) and own the ComfyUI prompts
// they accepted; when a gateway's lease ends (it died or closed) another
// adopts its prompts that have not ended, so that none is lost.

func keyGateway(id string) string { return prefix + "gw:" + id }

const keyCActive = prefix + "cactive"

// keyGatewaySet names every gateway that has held a lease and may still
// own prompts, so that adoption looks at the prompts only when one of them
// has gone, not at every prompt each third of the lease.
const keyGatewaySet = prefix + "gwset"

// RenewGateway makes or renews gateway id's lease.
func (s *Store) RenewGateway(ctx context.Context, id string, lease time.Duration) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, keyGateway(id), "1", lease)
		p.SAdd(ctx, keyGatewaySet, id)
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	return nil
}

// GoneGateways returns the gateways other than me whose lease has ended
// and whose prompts may wait for adoption.
func (s *Store) GoneGateways(ctx context.Context, me string) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, keyGatewaySet).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	var gone []string
	for _, id := range ids {
		if id == me {
			continue
		}
		n, err := s.rdb.Exists(ctx, keyGateway(id)).Result()
		if err != nil {
			return nil, redisErr(err)
		}
		if n == 0 {
			gone = append(gone, id)
		}
	}
	return gone, nil
}

// ForgetGateways drops gone gateways whose prompts have all been adopted
// (or ended) from the gateways that adoption looks at; one that renews
// its lease again is back.
func (s *Store) ForgetGateways(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.SRem(ctx, keyGatewaySet, members...).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// DropGateway ends gateway id's lease at once, so that its prompts are
// adopted without waiting for the lease.
func (s *Store) DropGateway(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, keyGateway(id)).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// ActivePrompts returns the ids of the prompts that have not ended
// (waiting or running), oldest first.
func (s *Store) ActivePrompts(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, keyCActive, 0, -1).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	return ids, nil
}

// scriptAdopt hands a prompt whose owner's lease ended to a new owner.
// KEYS: none. ARGV: prefix, prompt id, new owner. Returns 1 when adopted,
// 2 when it is the caller's already, 0 when its owner lives, -1 when it
// has ended.
var scriptAdopt = redis.NewScript(`
local P, id, me = ARGV[1], ARGV[2], ARGV[3]
local k = P..'cprompt:'..id
local st = redis.call('HGET', k, 'state')
if not st or st == 'done' then redis.call('ZREM', P..'cactive', id) return -1 end
local o = redis.call('HGET', k, 'owner')
if o == me then return 2 end
if o and redis.call('EXISTS', P..'gw:'..o) == 1 then return 0 end
redis.call('HSET', k, 'owner', me)
return 1
`)

// Adoption is what AdoptPrompt found of a prompt.
type Adoption int64

// The outcomes of AdoptPrompt.
const (
	AdoptionEnded Adoption = -1 // the prompt ended, or Redis has none
	AdoptionOwned Adoption = 0  // its owner's lease lives
	Adopted       Adoption = 1  // the caller owns it now
	AdoptionMine  Adoption = 2  // the caller owned it already (an earlier try may have adopted it, its answer lost)
)

// AdoptPrompt makes gateway me the owner of prompt id if its owner's lease
// has ended, and says what it found.
func (s *Store) AdoptPrompt(ctx context.Context, id, me string) (Adoption, error) {
	v, err := s.run(ctx, scriptAdopt, id, me)
	if err != nil {
		return AdoptionOwned, err
	}
	n, _ := v.(int64)
	return Adoption(n), nil
}

const keyHeldBy = prefix + "heldby"

// TrackHeld records that gateway owner holds the client's request of job
// (an A1111 request waiting in line), so that the job leaves the line if
// that gateway dies.
func (s *Store) TrackHeld(ctx context.Context, job, owner string) error {
	if err := s.rdb.HSet(ctx, keyHeldBy, job, owner).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// UntrackHeld forgets job's holder (the job ended, or its client left).
func (s *Store) UntrackHeld(ctx context.Context, job string) error {
	if err := s.rdb.HDel(ctx, keyHeldBy, job).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// ReapHeld takes out of the line the held jobs whose gateway's lease has
// ended (nobody waits for their answer) and frees a GPU reserved for them;
// it returns how many it took out. A job already running is forgotten:
// its gateway would have forgotten it when it ended.
func (s *Store) ReapHeld(ctx context.Context) (int, error) {
	held, err := s.rdb.HGetAll(ctx, keyHeldBy).Result()
	if err != nil {
		return 0, redisErr(err)
	}
	alive := map[string]bool{}
	n := 0
	for job, owner := range held {
		live, ok := alive[owner]
		if !ok {
			c, err := s.rdb.Exists(ctx, keyGateway(owner)).Result()
			if err != nil {
				return n, redisErr(err)
			}
			live = c == 1
			alive[owner] = live
		}
		if live {
			continue
		}
		ok, err := s.Cancel(ctx, job)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		} else if err := s.Done(ctx, job); err != nil { // running, or gone
			return n, err
		}
		if err := s.UntrackHeld(ctx, job); err != nil {
			return n, err
		}
	}
	return n, nil
}
