package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ComfyUI prompt states in Redis (Prompt.State).
const (
	PromptWaiting = "waiting" // in the cluster's line
	PromptRunning = "running" // dispatched to a machine
	PromptDone    = "done"    // its history entry is kept
)

// Prompt is what Redis keeps of one ComfyUI prompt that came through a
// gateway: where it stands, where it ran, and its history entry once done.
type Prompt struct {
	// ID is the prompt_id; Job the cluster job that carries it.
	ID, Job string
	// Number is its place number, as ComfyUI's "number".
	Number int64
	// State is PromptWaiting, PromptRunning or PromptDone.
	State string
	// URL and GPU are the machine's shim and GPU (running, done).
	URL, GPU string
	// Owner is the gateway that answers for it (it accepted or adopted it).
	Owner string
	// Body is the POST /prompt body as sent to the machine.
	Body []byte
	// History is its history entry (done).
	History json.RawMessage
	// Since is when it was dispatched (running; zero if unknown).
	Since time.Time
}

func keyCPrompt(id string) string   { return prefix + "cprompt:" + id }
func keyCDeleted(job string) string { return prefix + "cdeleted:" + job }
func keyCFile(file string) string   { return prefix + "cfile:" + file }

const (
	keyCPending = prefix + "cpending"
	keyCNumber  = prefix + "cnumber"
)

func redisErr(err error) error { return fmt.Errorf("cluster: redis: %w", err) }

// AddPrompt records a prompt that job carries, waiting in line and owned
// by gateway owner, and returns its number.
func (s *Store) AddPrompt(ctx context.Context, id, job, owner string, body []byte) (int64, error) {
	n, err := s.rdb.Incr(ctx, keyCNumber).Result()
	if err != nil {
		return 0, redisErr(err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		k := keyCPrompt(id)
		p.Del(ctx, k)
		p.HSet(ctx, k, "job", job, "number", n, "state", PromptWaiting, "body", body, "owner", owner)
		p.PExpire(ctx, k, jobTTL)
		p.ZAdd(ctx, keyCPending, redis.Z{Score: float64(n), Member: id})
		p.ZAdd(ctx, keyCActive, redis.Z{Score: float64(n), Member: id})
		publishLine(ctx, p)
		p.SAdd(ctx, keyGatewaySet, owner) // adoption looks at its prompts once it is gone
		return nil
	})
	if err != nil {
		return 0, redisErr(err)
	}
	return n, nil
}

// PromptDispatched marks a prompt running on gpu (its shim at url): it
// leaves the pending list. A prompt that ended meanwhile (interrupted in
// line) or is gone (deleted) is left as it is.
func (s *Store) PromptDispatched(ctx context.Context, id, gpu, url string) error {
	if _, err := s.run(ctx, scriptPromptDispatched, id, gpu, url, time.Now().UnixMicro(), ms(jobTTL)); err != nil {
		return err
	}
	return nil
}

// scriptPromptDispatched is PromptDispatched's change, made only while the
// prompt waits or runs. ARGV: prefix, prompt id, gpu, url, since (unix
// us), ttl ms. Returns 1, or 0 when the prompt ended or is gone.
var scriptPromptDispatched = redis.NewScript(`
local P, id = ARGV[1], ARGV[2]
local k = P..'cprompt:'..id
local st = redis.call('HGET', k, 'state')
if not st or st == 'done' then return 0 end
redis.call('ZREM', P..'cpending', id)
redis.call('HSET', k, 'state', 'running', 'gpu', ARGV[3], 'url', ARGV[4], 'since', ARGV[5])
redis.call('SET', P..'prompt:'..id, ARGV[4], 'PX', tonumber(ARGV[6]))
return 1
`)

// PromptWaitingAgain puts a prompt whose dispatch came to nothing back in
// the pending list, under its number.
func (s *Store) PromptWaitingAgain(ctx context.Context, id string) error {
	vals, err := s.rdb.HMGet(ctx, keyCPrompt(id), "number", "state").Result()
	if err != nil {
		return redisErr(err)
	}
	num, _ := vals[0].(string)
	if st, _ := vals[1].(string); st == "" || st == PromptDone {
		return nil // gone, or ended meanwhile (interrupted in line)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return nil
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, keyCPrompt(id), "state", PromptWaiting)
		p.HDel(ctx, keyCPrompt(id), "gpu", "url")
		p.ZAdd(ctx, keyCPending, redis.Z{Score: float64(n), Member: id})
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	return nil
}

// PromptFinished keeps a prompt's history entry and records which shim
// (url) holds each of its output files (as FileKey names them), for /view.
// A prompt that already ended keeps its first entry. Its job, which has
// ended with it, is forgotten in the same step: the gateway that
// dispatched it forgets it too, but may die (or lose Redis's answer)
// before it does, and nobody adopts a prompt that is done.
func (s *Store) PromptFinished(ctx context.Context, id string, entry json.RawMessage, url string, files []string) error {
	n, err := s.rdb.Incr(ctx, keyCNumber).Result()
	if err != nil {
		return redisErr(err)
	}
	k := keyCPrompt(id)
	err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		st, err := tx.HGet(ctx, k, "state").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if st == PromptDone {
			return nil
		}
		job, err := tx.HGet(ctx, k, "job").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if job != "" {
				p.Del(ctx, keyJob(job))
			}
			markDone(ctx, p, id, n)
			p.ZRem(ctx, keyCPending, id)
			p.ZRem(ctx, keyCActive, id)
			publishLine(ctx, p)
			p.HSet(ctx, k, "state", PromptDone, "history", []byte(entry))
			p.HDel(ctx, k, "body")
			p.PExpire(ctx, k, jobTTL)
			for _, f := range files {
				p.Set(ctx, keyCFile(f), url, jobTTL)
			}
			return nil
		})
		return err
	}, k)
	if errors.Is(err, redis.TxFailedErr) {
		return nil // another gateway kept its entry meanwhile
	}
	if err != nil {
		return redisErr(err)
	}
	return nil
}

// LookupPrompt reads a prompt; found is false when Redis has none.
func (s *Store) LookupPrompt(ctx context.Context, id string) (p Prompt, found bool, err error) {
	v, err := s.rdb.HGetAll(ctx, keyCPrompt(id)).Result()
	if err != nil {
		return Prompt{}, false, redisErr(err)
	}
	p, found = promptFrom(id, v)
	return p, found, nil
}

// promptFrom reads a prompt's hash (found is false for an empty one).
func promptFrom(id string, v map[string]string) (p Prompt, found bool) {
	if v["state"] == "" {
		return Prompt{}, false
	}
	n, _ := strconv.ParseInt(v["number"], 10, 64)
	p = Prompt{ID: id, Job: v["job"], Number: n, State: v["state"], URL: v["url"], GPU: v["gpu"], Owner: v["owner"], Body: []byte(v["body"])}
	if h := v["history"]; h != "" {
		p.History = json.RawMessage(h)
	}
	if us, err := strconv.ParseInt(v["since"], 10, 64); err == nil && us > 0 {
		p.Since = time.UnixMicro(us)
	}
	return p, true
}

// PendingPrompts returns the prompts waiting in line, oldest first.
func (s *Store) PendingPrompts(ctx context.Context) ([]Prompt, error) {
	ids, err := s.rdb.ZRange(ctx, keyCPending, 0, -1).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	out := make([]Prompt, 0, len(ids))
	for _, id := range ids {
		p, found, err := s.LookupPrompt(ctx, id)
		if err != nil {
			return nil, err
		}
		if !found || p.State != PromptWaiting {
			_ = s.rdb.ZRem(ctx, keyCPending, id).Err() // expired or stale
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// DeletePending takes a prompt that still waits in line out of the
// cluster, as ComfyUI's POST /queue delete does: it reports false when the
// prompt is not waiting (running, done or unknown).
func (s *Store) DeletePending(ctx context.Context, id string) (bool, error) {
	ok, err := s.takeOutOfLine(ctx, id)
	if err != nil || !ok {
		return false, err
	}
	if _, err := s.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.ZRem(ctx, keyCPending, id)
		pl.ZRem(ctx, keyCActive, id)
		publishLine(ctx, pl)
		pl.Del(ctx, keyCPrompt(id))
		return nil
	}); err != nil {
		return true, redisErr(err)
	}
	return true, nil
}

// scriptDropPrompt forgets a prompt if job still carries it. ARGV: prefix,
// prompt id, job. Returns 1 when it did.
var scriptDropPrompt = redis.NewScript(`
local P, id, job = ARGV[1], ARGV[2], ARGV[3]
local k = P..'cprompt:'..id
if redis.call('HGET', k, 'job') ~= job then return 0 end
redis.call('ZREM', P..'cpending', id)
redis.call('ZREM', P..'cactive', id)
redis.call('DEL', k)
return 1
`)

// DropPrompt forgets prompt id that AddPrompt recorded for job but whose
// job could not be put in line (no machine, a full line, Redis failed): it
// never waited. A prompt that another job carries now (the client sent it
// again) is left as it is.
func (s *Store) DropPrompt(ctx context.Context, id, job string) error {
	_, err := s.run(ctx, scriptDropPrompt, id, job)
	return err
}

// JobDeleted reports whether a job's prompt was deleted from the line.
func (s *Store) JobDeleted(ctx context.Context, job string) (bool, error) {
	n, err := s.rdb.Exists(ctx, keyCDeleted(job)).Result()
	if err != nil {
		return false, redisErr(err)
	}
	return n == 1, nil
}

// FileKey names an output file as ComfyUI's /view does.
func FileKey(typ, subfolder, filename string) string {
	if typ == "" {
		typ = "output"
	}
	return typ + "/" + subfolder + "/" + filename
}

// FileURL returns the shim that holds an output file ("" if unknown).
func (s *Store) FileURL(ctx context.Context, file string) (string, error) {
	v, err := s.rdb.Get(ctx, keyCFile(file)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", redisErr(err)
	}
	return v, nil
}
