package gateway

import (
	"errors"
	"fmt"
	"time"
)

// redisBound bounds the Redis round trips that admit a GPU job, so that a
// gateway whose Redis is down or hung answers within 2 s.
const redisBound = 1200 * time.Millisecond

// redisRedial is how long after Redis is back a gateway may still fail to
// reach it: go-redis dials a Redis it could not reach once a second.
const redisRedial = time.Second

// errRedisDown means a held request could not learn its state in Redis for
// a whole lease.
var errRedisDown = errors.New("gateway: Redis did not answer for a lease while the job waited")

// redisDownFor wraps the last Redis error of a wait that gave up.
func redisDownFor(d time.Duration, err error) error {
	return fmt.Errorf("%w (%s; last: %w)", errRedisDown, d.Round(time.Millisecond), err)
}
