package cluster

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The uploads kept in Redis are bounded in total bytes (BoundUploads):
// each kept upload's size and time are recorded beside it, and the oldest
// are evicted first.

const (
	keyCUpAge  = prefix + "cupage"  // kept upload key -> when kept (unix ms)
	keyCUpSize = prefix + "cupsize" // kept upload key -> its body's bytes
)

// noteKept adds to KeepUpload's pipeline the size and time of an upload.
func noteKept(ctx context.Context, p redis.Pipeliner, key string, size int, nowMS int64) {
	p.ZAdd(ctx, keyCUpAge, redis.Z{Score: float64(nowMS), Member: key})
	p.HSet(ctx, keyCUpSize, key, size)
}

// scriptBoundUploads evicts the oldest kept uploads until their total is
// at most max bytes, and forgets the records of those that expired.
// ARGV: prefix, max. Returns the evicted keys and sizes, flat.
var scriptBoundUploads = redis.NewScript(`
local P, max = ARGV[1], tonumber(ARGV[2])
local sizes = redis.call('HGETALL', P..'cupsize')
local total = 0
for i = 2, #sizes, 2 do total = total + tonumber(sizes[i]) end
local out = {}
for _, k in ipairs(redis.call('ZRANGE', P..'cupage', 0, -1)) do
  local gone = redis.call('EXISTS', P..'cupload:'..k) == 0
  if gone or total > max then
    local sz = tonumber(redis.call('HGET', P..'cupsize', k) or '0')
    total = total - sz
    redis.call('DEL', P..'cupload:'..k)
    redis.call('HDEL', P..'cuploads', k)
    redis.call('HDEL', P..'cupsize', k)
    redis.call('ZREM', P..'cupage', k)
    if not gone then
      out[#out+1] = k
      out[#out+1] = tostring(sz)
    end
  end
end
return out
`)

// Evicted is one kept upload that BoundUploads dropped.
type Evicted struct {
	// Key is the upload's key (see FileKey).
	Key string
	// Bytes is the size of its body.
	Bytes int64
}

// BoundUploads evicts the oldest kept uploads until they hold at most max
// bytes in all (a machine that lacks an evicted one then refuses a prompt
// naming it, until it is uploaded again), and returns what it evicted.
func (s *Store) BoundUploads(ctx context.Context, max int64) ([]Evicted, error) {
	v, err := s.run(ctx, scriptBoundUploads, max)
	if err != nil {
		return nil, err
	}
	flat := strs(v)
	out := make([]Evicted, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		n, _ := strconv.ParseInt(flat[i+1], 10, 64)
		out = append(out, Evicted{Key: flat[i], Bytes: n})
	}
	return out, nil
}
