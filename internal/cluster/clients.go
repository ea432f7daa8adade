package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

func keyClientJob(client string) string { return prefix + "aclient:" + client }

// clientJobTTL bounds a client's record if its gateway dies mid-job.
const clientJobTTL = time.Hour

// SetClientJob records that client's job runs on the shim at url (for
// A1111's /sdapi/v1/progress), under job's name.
func (s *Store) SetClientJob(ctx context.Context, client, job, url string) error {
	if err := s.rdb.Set(ctx, keyClientJob(client), job+"\n"+url, clientJobTTL).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// scriptClearClient deletes a client's record if it is still job's. ARGV:
// prefix, client, job.
var scriptClearClient = redis.NewScript(`
local k = ARGV[1]..'aclient:'..ARGV[2]
local v = redis.call('GET', k)
if v and string.sub(v, 1, #ARGV[3] + 1) == ARGV[3]..'\n' then redis.call('DEL', k) end
return 0
`)

// ClearClientJob forgets client's record if it is still job's.
func (s *Store) ClearClientJob(ctx context.Context, client, job string) error {
	_, err := s.run(ctx, scriptClearClient, client, job)
	return err
}

// ClientJobURL returns the shim that runs client's job ("" if none).
func (s *Store) ClientJobURL(ctx context.Context, client string) (string, error) {
	v, err := s.rdb.Get(ctx, keyClientJob(client)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", redisErr(err)
	}
	for i := range len(v) {
		if v[i] == '\n' {
			return v[i+1:], nil
		}
	}
	return "", nil
}
