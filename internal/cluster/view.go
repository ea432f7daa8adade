package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// viewMaxLine bounds the jobs of the line a View lists (the length is exact).
const viewMaxLine = 100

// View is the cluster's state as one reader sees it: for pages, not for
// decisions (it is read in a few round trips, not atomically).
type View struct {
	// GPUs lists every registered GPU, by id.
	GPUs []GPUView `json:"gpus"`
	// LineLength is how many jobs wait in the cluster's line.
	LineLength int64 `json:"line_length"`
	// Line lists the first jobs of the line (at most 100), first first.
	Line []JobView `json:"line"`
	// WaitingByProfile counts the listed waiting jobs per profile.
	WaitingByProfile map[string]int `json:"waiting_by_profile"`
}

// GPUView is one registered GPU.
type GPUView struct {
	// ID is "node/gpu/profile".
	ID      string `json:"id"`
	Node    string `json:"node"`
	GPU     int    `json:"gpu"`
	Profile string `json:"profile"`
	// URL is the shim's advertise URL.
	URL string `json:"url"`
	// Free reports whether the GPU is offered (free and in the free set).
	Free bool `json:"free"`
	// Reserved reports whether a matched job is on its way to the GPU.
	Reserved bool `json:"reserved"`
	// LeaseSeconds is what is left of the registration's lease.
	LeaseSeconds float64 `json:"lease_seconds"`
}

// JobView is one job in the line.
type JobView struct {
	ID      string `json:"id"`
	Profile string `json:"profile"`
	State   string `json:"state"`
	// WaitedSeconds is how long ago the job was put in line (from its
	// hash's expiry, which is set once, at Enqueue).
	WaitedSeconds float64 `json:"waited_seconds"`
}

// View reads the cluster's state, bounded by ctx.
func (s *Store) View(ctx context.Context) (View, error) {
	v := View{WaitingByProfile: map[string]int{}}
	var regs []string
	iter := s.rdb.Scan(ctx, 0, keyReg("*"), 256).Iterator()
	for iter.Next(ctx) {
		regs = append(regs, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return View{}, fmt.Errorf("cluster: redis: %w", err)
	}
	slices.Sort(regs)
	pipe := s.rdb.Pipeline()
	type reg struct {
		val  *redis.StringCmd
		ttl  *redis.DurationCmd
		free *redis.FloatCmd
		res  *redis.IntCmd
	}
	rs := make([]reg, len(regs))
	for i, k := range regs {
		id := strings.TrimPrefix(k, keyReg(""))
		node, gpu, profile := splitID(id)
		rs[i] = reg{val: pipe.Get(ctx, k), ttl: pipe.PTTL(ctx, k),
			free: pipe.ZScore(ctx, keyFree(profile), id),
			res:  pipe.Exists(ctx, prefix+"reserved:"+node+"/"+gpu)}
	}
	length := pipe.ZCard(ctx, prefix+"line")
	line := pipe.ZRange(ctx, prefix+"line", 0, viewMaxLine-1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return View{}, fmt.Errorf("cluster: redis: %w", err)
	}
	for i, k := range regs {
		val, err := rs[i].val.Result()
		if err != nil {
			continue // the lease ran out meanwhile
		}
		id := strings.TrimPrefix(k, keyReg(""))
		node, gpu, profile := splitID(id)
		n, _ := strconv.Atoi(gpu)
		_, url, _ := strings.Cut(val, "\n")
		_, ferr := rs[i].free.Result()
		v.GPUs = append(v.GPUs, GPUView{ID: id, Node: node, GPU: n, Profile: profile, URL: url,
			Free: ferr == nil, Reserved: rs[i].res.Val() == 1, LeaseSeconds: rs[i].ttl.Val().Seconds()})
	}
	v.LineLength = length.Val()
	ids := line.Val()
	pipe = s.rdb.Pipeline()
	jobs := make([]*redis.SliceCmd, len(ids))
	ttls := make([]*redis.DurationCmd, len(ids))
	for i, id := range ids {
		jobs[i] = pipe.HMGet(ctx, keyJob(id), "profile", "state")
		ttls[i] = pipe.PTTL(ctx, keyJob(id))
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return View{}, fmt.Errorf("cluster: redis: %w", err)
		}
	}
	for i, id := range ids {
		f := jobs[i].Val()
		if len(f) != 2 || f[0] == nil {
			continue // finished meanwhile
		}
		profile, _ := f[0].(string)
		state, _ := f[1].(string)
		waited := max(0, (jobTTL - ttls[i].Val()).Seconds())
		v.Line = append(v.Line, JobView{ID: id, Profile: profile, State: state, WaitedSeconds: waited})
		v.WaitingByProfile[profile]++
	}
	return v, nil
}

// splitID splits "node/gpu/profile"; the node may hold slashes.
func splitID(id string) (node, gpu, profile string) {
	rest, profile, _ := cutLast(id)
	node, gpu, _ = cutLast(rest)
	return node, gpu, profile
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndex(s, "/")
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}
