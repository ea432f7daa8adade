package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster's wanted A1111 options (POST /sdapi/v1/options through a
// gateway) live in one hash, gpulock:a1111:options (option -> its JSON
// value), so that a machine that joins later applies them before its
// first job (Member, memberoptions.go).
const keyOptions = prefix + "a1111:options"

// EnqueuePinned puts a new job in line that only member (node/gpu/profile)
// may run: it takes member if that is free, else it waits in line at the
// place turn gives it, and only member's GPU takes it when it frees. It
// is Enqueue with turn.Pin set (which a job put in line again keeps), with
// no bound on the line. It fails with ErrNoMachine when member is not
// registered, and ErrJobExists.
func (s *Store) EnqueuePinned(ctx context.Context, member, id string, turn Turn, reserve time.Duration) (Match, error) {
	_, _, profile := splitID(member)
	turn.Pin = member
	return s.Enqueue(ctx, profile, id, turn, 0, reserve)
}

// LiveGPU is one live registration: its id (node/gpu/profile) and URL.
type LiveGPU struct {
	ID, URL string
}

// LiveGPUs returns the live GPUs serving profile, by id.
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

// SetWantedOptions merges opts into the cluster's wanted A1111 options.
func (s *Store) SetWantedOptions(ctx context.Context, opts map[string]json.RawMessage) error {
	if len(opts) == 0 {
		return nil
	}
	vals := make([]any, 0, 2*len(opts))
	for k, v := range opts {
		vals = append(vals, k, string(v))
	}
	if err := s.rdb.HSet(ctx, keyOptions, vals...).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// WantedOptions returns the cluster's wanted A1111 options as one JSON
// object, or nil when none were set.
func (s *Store) WantedOptions(ctx context.Context) ([]byte, error) {
	m, err := s.rdb.HGetAll(ctx, keyOptions).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	obj := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		if !json.Valid([]byte(v)) {
			return nil, fmt.Errorf("cluster: the wanted option %q in Redis is not JSON; set it again through a gateway", k)
		}
		obj[k] = json.RawMessage(v)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot encode the wanted options: %w", err)
	}
	return b, nil
}

// ReplaceWantedOptions sets the cluster's wanted A1111 options to obj (a
// JSON object, as WantedOptions gives; nil for none).
func (s *Store) ReplaceWantedOptions(ctx context.Context, obj []byte) error {
	var opts map[string]json.RawMessage
	if obj != nil {
		if err := json.Unmarshal(obj, &opts); err != nil {
			return fmt.Errorf("cluster: the wanted options are not a JSON object: %w", err)
		}
	}
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, keyOptions)
	if len(opts) > 0 {
		vals := make([]any, 0, 2*len(opts))
		for k, v := range opts {
			vals = append(vals, k, string(v))
		}
		pipe.HSet(ctx, keyOptions, vals...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return redisErr(err)
	}
	return nil
}

// Registered reports whether member (node/gpu/profile) has a live
// registration.
func (s *Store) Registered(ctx context.Context, member string) (bool, error) {
	n, err := s.rdb.Exists(ctx, keyReg(member)).Result()
	if err != nil {
		return false, redisErr(err)
	}
	return n == 1, nil
}
