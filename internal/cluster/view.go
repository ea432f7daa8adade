package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/redis/go-redis/v9"
)

// viewMaxLine bounds the jobs of the line a View lists (the length is exact).
const viewMaxLine = 100

// viewScanMax bounds how far into the line a View for one client looks.
const viewScanMax = 10000

// viewChunk is how many jobs of the line one round trip reads.
const viewChunk = 256

// GPU states in a View.
const (
	// GPUFree: offered to the line.
	GPUFree = "free"
	// GPUReserved: a matched job is on its way to it.
	GPUReserved = "reserved"
	// GPURunning: it runs a job of the cluster's line.
	GPURunning = "running"
	// GPUBusy: its lock is held by someone else (a local client of its
	// shim, `gpulock exec`, the other service of the GPU).
	GPUBusy = "busy"
	// GPUIdle: neither offered nor held (just registered, held off after
	// a failed dispatch, or its sibling's match has it).
	GPUIdle = "idle"
)

// View is the cluster's state as one reader sees it: for pages, not for
// decisions (it is read in a few round trips, not atomically).
type View struct {
	// GPUs lists every registered GPU, by id.
	GPUs []GPUView `json:"gpus"`
	// LineLength is how many jobs wait in the cluster's line.
	LineLength int64 `json:"line_length"`
	// Line lists the first jobs of the line (at most 100), first first;
	// for a View of one client, that client's jobs only.
	Line []JobView `json:"line"`
	// WaitingByProfile counts the listed waiting jobs per profile.
	WaitingByProfile map[string]int `json:"waiting_by_profile"`
	// Client is the client the line was filtered by ("" for all).
	Client string `json:"client,omitempty"`
	// A1111Options are the options set for the whole cluster through a
	// gateway (the model every A1111 machine runs), when any were.
	A1111Options json.RawMessage `json:"a1111_options,omitempty"`
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
	// State is one of free, reserved, running, busy and idle.
	State string `json:"state"`
	// Free reports whether the GPU is offered (free and in the free set).
	Free bool `json:"free"`
	// Reserved reports whether a matched job is on its way to the GPU.
	Reserved bool `json:"reserved"`
	// Job is the cluster job it runs or is reserved for (a ComfyUI
	// prompt's id once its shim took it); JobClient that job's client.
	Job       string `json:"job,omitempty"`
	JobClient string `json:"job_client,omitempty"`
	// Since is when its job started, else when its holder took the lock.
	Since *time.Time `json:"since,omitempty"`
	// Holder is who holds its local lock, as its shim last told.
	Holder *HolderView `json:"holder,omitempty"`
	// LeaseSeconds is what is left of the registration's lease: the
	// machine is alive while it is above zero.
	LeaseSeconds float64 `json:"lease_seconds"`
}

// JobView is one job in the line.
type JobView struct {
	ID      string `json:"id"`
	Profile string `json:"profile"`
	State   string `json:"state"`
	// Position is the job's place in the whole line, 1 for the next.
	Position int `json:"position"`
	// Client is who the job is for; Priority its level (low, normal, high).
	Client   string `json:"client"`
	Priority string `json:"priority"`
	// Pin is the only GPU that may run the job (an A1111 options change).
	Pin string `json:"pin,omitempty"`
	// WaitedSeconds is how long ago the job was put in line (from its
	// hash's expiry, which is set once, at Enqueue).
	WaitedSeconds float64 `json:"waited_seconds"`
}

// View reads the cluster's state, bounded by ctx.
func (s *Store) View(ctx context.Context) (View, error) { return s.ViewClient(ctx, "") }

// ViewClient is View with the line filtered to client's jobs (all clients
// when ""), each with its position in the whole line.
func (s *Store) ViewClient(ctx context.Context, client string) (View, error) {
	v := View{WaitingByProfile: map[string]int{}, Client: client}
	gpus, err := s.viewGPUs(ctx)
	if err != nil {
		return View{}, err
	}
	v.GPUs = gpus
	if v.LineLength, err = s.rdb.ZCard(ctx, prefix+"line").Result(); err != nil {
		return View{}, redisErr(err)
	}
	if v.Line, err = s.viewLine(ctx, client); err != nil {
		return View{}, err
	}
	if v.A1111Options, err = s.WantedOptions(ctx); err != nil {
		return View{}, err
	}
	for _, j := range v.Line {
		v.WaitingByProfile[j.Profile]++
	}
	return v, nil
}

// viewGPUs reads every registration and what its GPU does.
func (s *Store) viewGPUs(ctx context.Context) ([]GPUView, error) {
	var regs []string
	iter := s.rdb.Scan(ctx, 0, keyReg("*"), 256).Iterator()
	for iter.Next(ctx) {
		regs = append(regs, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, redisErr(err)
	}
	slices.Sort(regs)
	pipe := s.rdb.Pipeline()
	type reg struct {
		val, res, run, holder *redis.StringCmd
		ttl                   *redis.DurationCmd
		free                  *redis.FloatCmd
	}
	rs := make([]reg, len(regs))
	for i, k := range regs {
		id := strings.TrimPrefix(k, keyReg(""))
		node, gpu, profile := splitID(id)
		rs[i] = reg{val: pipe.Get(ctx, k), ttl: pipe.PTTL(ctx, k),
			free:   pipe.ZScore(ctx, keyFree(profile), id),
			res:    pipe.Get(ctx, prefix+"reserved:"+node+"/"+gpu),
			run:    pipe.Get(ctx, prefix+"running:"+node+"/"+gpu),
			holder: pipe.Get(ctx, keyHolder(id))}
	}
	if len(regs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, redisErr(err)
		}
	}
	// The jobs the GPUs run or are reserved for.
	jobs := map[string]*redis.SliceCmd{}
	pipe = s.rdb.Pipeline()
	for i := range regs {
		for _, id := range []string{rs[i].res.Val(), rs[i].run.Val()} {
			if id != "" && id != "-" && jobs[id] == nil {
				jobs[id] = pipe.HMGet(ctx, keyJob(id), "state", "gpu", "client", "started")
			}
		}
	}
	if len(jobs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, redisErr(err)
		}
	}
	var prompts map[string]string // ComfyUI member -> its running prompt
	for _, k := range regs {
		if _, _, p := splitID(strings.TrimPrefix(k, keyReg(""))); p == "comfyui" {
			var err error
			if prompts, err = s.runningPrompts(ctx); err != nil { // viewprompts.go
				return nil, err
			}
			break
		}
	}
	var out []GPUView
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
		g := GPUView{ID: id, Node: node, GPU: n, Profile: profile, URL: url, Free: ferr == nil,
			LeaseSeconds: rs[i].ttl.Val().Seconds(), State: GPUIdle}
		if b := rs[i].holder.Val(); b != "" {
			var h HolderView
			if json.Unmarshal([]byte(b), &h) == nil {
				g.Holder = &h
			}
		}
		res := rs[i].res.Val()
		g.Reserved = res != ""
		switch j := jobFields(jobs[rs[i].run.Val()]); {
		case j != nil && j.state == StateRunning && j.gpu == id:
			g.State, g.Job, g.JobClient, g.Since = GPURunning, rs[i].run.Val(), j.client, j.started
		case g.Reserved && res != "-":
			g.State, g.Job = GPUReserved, res
			if j := jobFields(jobs[res]); j != nil {
				g.JobClient = j.client
			}
		case prompts[id] != "":
			g.State, g.Job = GPURunning, prompts[id]
			if g.Holder != nil && !g.Holder.Since.IsZero() {
				since := g.Holder.Since
				g.Since = &since
			}
		case g.Holder != nil:
			g.State = GPUBusy
			if !g.Holder.Since.IsZero() {
				since := g.Holder.Since
				g.Since = &since
			}
		case g.Free:
			g.State = GPUFree
		}
		out = append(out, g)
	}
	return out, nil
}

// jobFieldsView is a job hash read by viewGPUs (state, gpu, client,
// started).
type jobFieldsView struct {
	state, gpu, client string
	started            *time.Time
}

// jobFields reads c; nil when the job has no hash.
func jobFields(c *redis.SliceCmd) *jobFieldsView {
	if c == nil {
		return nil
	}
	f := c.Val()
	if len(f) != 4 || f[0] == nil {
		return nil
	}
	j := &jobFieldsView{}
	j.state, _ = f[0].(string)
	j.gpu, _ = f[1].(string)
	j.client, _ = f[2].(string)
	if us, err := strconv.ParseInt(fmt.Sprint(f[3]), 10, 64); err == nil {
		t := time.UnixMicro(us).UTC()
		j.started = &t
	}
	return j
}

// viewLine reads the line in chunks: its first viewMaxLine jobs, or (for
// one client) that client's first viewMaxLine within viewScanMax.
func (s *Store) viewLine(ctx context.Context, client string) ([]JobView, error) {
	var out []JobView
	position := 0
	for from := int64(0); from < viewScanMax && len(out) < viewMaxLine; from += viewChunk {
		ids, err := s.rdb.ZRange(ctx, prefix+"line", from, from+viewChunk-1).Result()
		if err != nil {
			return nil, redisErr(err)
		}
		if len(ids) == 0 {
			break
		}
		pipe := s.rdb.Pipeline()
		jobs := make([]*redis.SliceCmd, len(ids))
		ttls := make([]*redis.DurationCmd, len(ids))
		for i, id := range ids {
			jobs[i] = pipe.HMGet(ctx, keyJob(id), "profile", "state", "client", "level", "pin")
			ttls[i] = pipe.PTTL(ctx, keyJob(id))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, redisErr(err)
		}
		for i, id := range ids {
			f := jobs[i].Val()
			if len(f) != 5 || f[0] == nil {
				continue // finished meanwhile
			}
			position++
			str := func(k int) string { s, _ := f[k].(string); return s }
			if client != "" && str(2) != client {
				continue
			}
			level, _ := strconv.Atoi(str(3))
			waited := max(0, (jobTTL - ttls[i].Val()).Seconds())
			out = append(out, JobView{ID: id, Profile: str(0), State: str(1), Position: position, Client: str(2),
				Priority: gpulock.Priority(level).String(), Pin: str(4), WaitedSeconds: waited})
			if len(out) == viewMaxLine {
				break
			}
		}
		if len(ids) < viewChunk {
			break
		}
	}
	return out, nil
}

// Position returns a job's place in the line (1 for the next; 0 when it is
// not waiting) and the line's length.
func (s *Store) Position(ctx context.Context, id string) (position int, length int64, err error) {
	pipe := s.rdb.Pipeline()
	rank := pipe.ZRank(ctx, prefix+"line", id)
	card := pipe.ZCard(ctx, prefix+"line")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, redisErr(err)
	}
	if r, err := rank.Result(); err == nil {
		position = int(r) + 1
	}
	return position, card.Val(), nil
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
