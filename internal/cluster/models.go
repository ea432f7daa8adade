package cluster

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Model-aware dispatch. A job may name the model it loads (Turn.Model; the
// job's hash keeps it as "model"). When a job that names one starts on a
// GPU (scriptStarted), gpulock:models records it as that GPU member's last
// model. A job that arrives while several GPUs of its profile are free
// takes one whose last model is its own, else the one free longest
// (take_free in luaLib): it never waits for a GPU with its model while
// another is free, and a GPU that frees still takes the longest-waiting
// job, so the order of the line is unchanged.
const keyModels = prefix + "models"

// LastModel returns the model of the last job that started on gpu (a
// member id, GPUID) and named one; "" when none did.
func (s *Store) LastModel(ctx context.Context, gpu string) (string, error) {
	v, err := s.rdb.HGet(ctx, keyModels, gpu).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", redisErr(err)
	}
	return v, nil
}

// SetLastModel records model as gpu's last, as a job starting there does;
// for a backend that loaded a model outside the cluster (and for tests).
func (s *Store) SetLastModel(ctx context.Context, gpu, model string) error {
	if err := s.rdb.HSet(ctx, keyModels, gpu, model).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// Recent job times, for a waiting prompt's estimated start.
const (
	// jobTimesKept is how many of the last job times are kept per profile.
	jobTimesKept = 50
)

func keyJobTimes(profile string) string { return prefix + "jobtimes:" + profile }

// RecordJobTime keeps the running time of a job of profile that ended
// (the last jobTimesKept of them).
func (s *Store) RecordJobTime(ctx context.Context, profile string, d time.Duration) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, keyJobTimes(profile), d.Microseconds())
		p.LTrim(ctx, keyJobTimes(profile), 0, jobTimesKept-1)
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	return nil
}

// MeanJobTime returns the mean of the recent job times of profile; ok is
// false when none is known yet.
func (s *Store) MeanJobTime(ctx context.Context, profile string) (mean time.Duration, ok bool, err error) {
	vals, err := s.rdb.LRange(ctx, keyJobTimes(profile), 0, -1).Result()
	if err != nil {
		return 0, false, redisErr(err)
	}
	var sum, n int64
	for _, v := range vals {
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us >= 0 {
			sum += us
			n++
		}
	}
	if n == 0 {
		return 0, false, nil
	}
	return time.Duration(sum/n) * time.Microsecond, true, nil
}
