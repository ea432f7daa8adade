package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPersistentServerKeepsItsDataAcrossAKill(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *Server
		kept  bool
	}{{"persistent", StartPersistent, true}, {"plain", Start, false}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rdb := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
			defer rdb.Close()
			require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
			s.Restart() // SIGKILL, then a new server on the same port
			got, err := rdb.Get(ctx, "k").Result()
			if tc.kept {
				require.NoError(t, err)
				assert.Equal(t, "v", got)
				return
			}
			assert.ErrorIs(t, err, redis.Nil, "the plain server starts empty")
		})
	}
}
