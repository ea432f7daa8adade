package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors callers branch on.
var (
	// ErrNoMachine means no live GPU serves the profile.
	ErrNoMachine = errors.New("cluster: no live machine serves this profile; start a shim with --redis, or check its lease")
	// ErrQueueFull means the profile's line is at its bound.
	ErrQueueFull = errors.New("cluster: the line is full")
	// ErrTaken means another live registration holds the GPU.
	ErrTaken = errors.New("cluster: another live shim is registered for this node, GPU and profile; stop it or pick another --node")
	// ErrJobExists means a job id is already in use.
	ErrJobExists = errors.New("cluster: the job id is already in use")
)

// Job states in Redis.
const (
	StateWaiting  = "waiting"
	StateAssigned = "assigned"
	StateRunning  = "running"
)

// jobTTL bounds the life of a job's hash if its gateway dies.
const jobTTL = 24 * time.Hour

// Store is the cluster's state in one Redis. All its methods are safe for
// concurrent use; each is one round trip (a script where it must be atomic)
// bounded by ctx.
type Store struct {
	rdb *redis.Client
}

// Dial connects to the Redis at url (redis://host:port/db). The client
// bounds each command by the caller's context.
func Dial(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cluster: bad --redis URL %q (want redis://host:port/db): %w", url, err)
	}
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.MaxRetries = 1
	return redis.NewClient(opt), nil
}

// NewStore returns a Store on rdb.
func NewStore(rdb *redis.Client) *Store { return &Store{rdb: rdb} }

// Client returns the Redis client.
func (s *Store) Client() *redis.Client { return s.rdb }

// Match is where a job stands.
type Match struct {
	// State is StateWaiting, StateAssigned or StateRunning.
	State string
	// GPU is the GPU the job is matched with (assigned, running).
	GPU string
	// URL is that GPU's shim (its advertise URL).
	URL string
	// N counts the job's matches so far (1 for its first): a matched
	// channel hint with a higher N than the last match a gateway acted on
	// is the job's current match (see ParseMatched).
	N int64
	// Pre is true for a job in StateRunning that the GPU's member started
	// with its match (it held the lock, see OfferHeld): its dispatch is
	// still awaited, so its gateway dispatches it as an assigned one (the
	// shim lets it run once).
	Pre bool
}

// ParseMatched reads a matched channel message: the job's id and its match
// (StateAssigned, GPU, URL, N). ok is false for a message of another form.
func ParseMatched(payload string) (id string, m Match, ok bool) {
	parts := strings.SplitN(payload, "\n", 4)
	if len(parts) != 4 {
		return "", Match{}, false
	}
	n, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return "", Match{}, false
	}
	return parts[0], Match{State: StateAssigned, GPU: parts[1], URL: parts[2], N: n}, true
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func (s *Store) run(ctx context.Context, sc *redis.Script, args ...any) (any, error) {
	v, err := sc.Run(ctx, s.rdb, nil, append([]any{prefix}, args...)...).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: redis: %w", err)
	}
	return v, nil
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, len(list))
	for i, x := range list {
		out[i], _ = x.(string)
	}
	return out
}

func matchOf(r []string) (Match, error) {
	switch {
	case len(r) == 0:
		return Match{}, errors.New("cluster: empty reply from a script")
	case r[0] == "none":
		return Match{}, ErrNoMachine
	case r[0] == "full":
		return Match{}, ErrQueueFull
	case r[0] == "exists":
		return Match{}, ErrJobExists
	case r[0] == StateAssigned && len(r) == 4:
		n, _ := strconv.ParseInt(r[3], 10, 64)
		return Match{State: StateAssigned, GPU: r[1], URL: r[2], N: n}, nil
	case r[0] == StateWaiting:
		return Match{State: StateWaiting}, nil
	}
	return Match{}, fmt.Errorf("cluster: unexpected reply %q from a script", r)
}

// Enqueue puts a new job for profile in line at the place turn gives it
// (see Turn), or matches it with the GPU free longest. reserve is how long a matched GPU waits for its job to
// arrive. It fails with ErrNoMachine, ErrQueueFull (maxQueue > 0) or
// ErrJobExists, and then stores nothing.
func (s *Store) Enqueue(ctx context.Context, profile, id string, turn Turn, maxQueue int, reserve time.Duration) (Match, error) {
	v, err := s.run(ctx, scriptEnqueue, append([]any{profile, id, ms(reserve), ms(jobTTL), maxQueue}, turn.args()...)...)
	if err != nil {
		return Match{}, err
	}
	return matchOf(strs(v))
}

// Job reads where a job stands; found is false when Redis has no such job
// (never queued, finished, or lost with a Redis restart).
func (s *Store) Job(ctx context.Context, id string) (m Match, found bool, err error) {
	vals, err := s.rdb.HMGet(ctx, keyJob(id), "state", "gpu", "url", "n", "pre").Result()
	if err != nil {
		return Match{}, false, fmt.Errorf("cluster: redis: %w", err)
	}
	st, _ := vals[0].(string)
	if st == "" {
		return Match{}, false, nil
	}
	m.State = st
	m.GPU, _ = vals[1].(string)
	m.URL, _ = vals[2].(string)
	n, _ := vals[3].(string)
	m.N, _ = strconv.ParseInt(n, 10, 64)
	pre, _ := vals[4].(string)
	m.Pre = st == StateRunning && pre != ""
	return m, true, nil
}

// Requeue puts a job matched with gpu that never started back in its place
// in line, or matches it again at once. hold keeps gpu out of matches for
// that long (for a GPU that was unreachable). dispatch is the token of the
// dispatch that came to nothing (or ""): a job that dispatch started in
// Redis counts as never started, since its shim refused it. found is false
// when the job is no longer assigned to gpu.
func (s *Store) Requeue(ctx context.Context, id, gpu, dispatch string, reserve, hold time.Duration) (m Match, found bool, err error) {
	v, err := s.run(ctx, scriptRequeue, id, gpu, ms(reserve), ms(hold), dispatch)
	if err != nil {
		return Match{}, false, err
	}
	r := strs(v)
	if len(r) > 0 && r[0] == "gone" {
		return Match{}, false, nil
	}
	m, err = matchOf(r)
	return m, err == nil, err
}

// Cancel takes a job that has not started out of line and frees a GPU
// reserved for it. It reports false when the job is running or unknown.
func (s *Store) Cancel(ctx context.Context, id string) (bool, error) {
	return s.cancel(ctx, id, "0")
}

// Withdraw is Cancel for a job that nobody will dispatch (its gateway gave
// up on its client): it also takes a job that a held offer started with
// its match and no dispatch claimed (Match.Pre), whose member then lets its
// lock go. It reports false when the job is running or unknown.
func (s *Store) Withdraw(ctx context.Context, id string) (bool, error) {
	return s.cancel(ctx, id, "1")
}

func (s *Store) cancel(ctx context.Context, id, unclaimed string) (bool, error) {
	v, err := s.run(ctx, scriptCancel, id, unclaimed)
	if err != nil {
		return false, err
	}
	return v == int64(1), nil
}

// Done forgets a finished job.
func (s *Store) Done(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, keyJob(id)).Err(); err != nil {
		return fmt.Errorf("cluster: redis: %w", err)
	}
	return nil
}

// Started marks job running on gpu. It reports false when the job is not
// assigned to gpu (it was cancelled, requeued or lost): then it must not run.
func (s *Store) Started(ctx context.Context, id, gpu string) (bool, error) {
	return s.StartedBy(ctx, id, gpu, "", "")
}

// StartedBy is Started for the member with token, by the dispatch with the
// token dispatch (HeaderDispatchToken; "" for none). A job that the
// member's held offer started (OfferHeld) and that it has not handed to its
// shim counts as assigned to it, once. A job this dispatch started already
// reports true again (the first answer was lost); Requeue with the same
// dispatch token puts such a job back in line when the shim refused it.
func (s *Store) StartedBy(ctx context.Context, id, gpu, token, dispatch string) (bool, error) {
	v, err := s.run(ctx, scriptStarted, id, gpu, token, dispatch)
	if err != nil {
		return false, err
	}
	return v == int64(1), nil
}

// Unstart puts a job that token's held offer started, and whose lock went
// back unclaimed, back to assigned to gpu (reserved for it for reserve).
func (s *Store) Unstart(ctx context.Context, id, gpu, token string, reserve time.Duration) error {
	_, err := s.run(ctx, scriptUnstart, id, gpu, token, ms(reserve))
	return err
}

// Unpre takes the mark of a job started by token's held offer off, once
// its member handed it to its shim (see StartedBy).
func (s *Store) Unpre(ctx context.Context, id, token string) error {
	_, err := s.run(ctx, scriptUnpre, id, token)
	return err
}

// Register registers gpu (serving profile at url) with a lease, or renews
// its own registration (same token). It fails with ErrTaken when another
// live registration holds gpu.
func (s *Store) Register(ctx context.Context, gpu, profile, token, url string, lease time.Duration) error {
	v, err := s.run(ctx, scriptRegister, gpu, profile, token, url, ms(lease))
	if err != nil {
		return err
	}
	if v != int64(1) {
		return ErrTaken
	}
	return nil
}

// Unregister removes gpu's registration if it is still token's.
func (s *Store) Unregister(ctx context.Context, gpu, profile, token string) error {
	_, err := s.run(ctx, scriptUnregister, gpu, profile, token)
	return err
}

// Offer outcomes.
const (
	OfferFree         = "free"
	OfferAssigned     = "assigned"
	OfferReserved     = "reserved"
	OfferUnregistered = "unregistered"
	// OfferSibling (OfferHeld, OfferTurn): the first job the GPU serves is
	// its sibling's; nothing was matched.
	OfferSibling = "sibling"
)

// Offer offers a free gpu: it takes the first waiting job in line it can serve, or
// joins the free set. It returns OfferAssigned with the job id,
// OfferFree, OfferReserved (already promised to a job) or OfferUnregistered
// (the registration is gone: register again).
func (s *Store) Offer(ctx context.Context, gpu, profile, token string, reserve time.Duration) (outcome, job string, err error) {
	outcome, job, _, err = s.offer(ctx, gpu, profile, token, reserve, 1, 0)
	return outcome, job, err
}

// OfferHeld is Offer for a GPU whose lock its member holds, to hand it to
// the job matched: a job of a sibling (the GPU's shim of the other
// profile, another process) is not matched, OfferSibling says it waits.
// A job matched is started with it (Started's record, in the same script):
// started is true, and the shim runs it without asking Started.
func (s *Store) OfferHeld(ctx context.Context, gpu, profile, token string, reserve time.Duration) (outcome, job string, started bool, err error) {
	return s.offer(ctx, gpu, profile, token, reserve, 1, 1)
}

// OfferTurn is OfferHeld for a GPU whose lock its member holds for the
// cluster's turn while local users wait: with no job for it, it does not
// join the free set (the lock goes to the local users).
func (s *Store) OfferTurn(ctx context.Context, gpu, profile, token string, reserve time.Duration) (outcome, job string, started bool, err error) {
	return s.offer(ctx, gpu, profile, token, reserve, 0, 1)
}

func (s *Store) offer(ctx context.Context, gpu, profile, token string, reserve time.Duration, join, held int) (outcome, job string, started bool, err error) {
	v, err := s.run(ctx, scriptOffer, gpu, profile, token, ms(reserve), join, held)
	if err != nil {
		return "", "", false, err
	}
	r := strs(v)
	if len(r) == 0 {
		return "", "", false, errors.New("cluster: empty reply from the offer script")
	}
	if len(r) > 1 {
		job = r[1]
	}
	return r[0], job, len(r) > 2 && r[2] == "started", nil
}

// Waiting returns how many jobs of profile wait in line (an entry of a job
// gone meanwhile may count until a GPU's offer drops it).
func (s *Store) Waiting(ctx context.Context, profile string) (int64, error) {
	n, err := s.rdb.ZCard(ctx, prefix+"pline:"+profile).Result()
	if err != nil {
		return 0, fmt.Errorf("cluster: redis: %w", err)
	}
	return n, nil
}

// Busy takes gpu out of profile's free set.
func (s *Store) Busy(ctx context.Context, gpu, profile string) error {
	if err := s.rdb.ZRem(ctx, keyFree(profile), gpu).Err(); err != nil {
		return fmt.Errorf("cluster: redis: %w", err)
	}
	return nil
}

// LiveURLs returns the advertise URLs of the live GPUs serving profile, in
// two commands whatever their number (SMEMBERS, then one MGET).
func (s *Store) LiveURLs(ctx context.Context, profile string) ([]string, error) {
	gpus, err := s.rdb.SMembers(ctx, keyGPUs(profile)).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: redis: %w", err)
	}
	if len(gpus) == 0 {
		return nil, nil
	}
	keys := make([]string, len(gpus))
	for i, g := range gpus {
		keys[i] = keyReg(g)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: redis: %w", err)
	}
	var out []string
	for _, v := range vals {
		reg, _ := v.(string) // nil: the registration ran out
		if _, url, ok := strings.Cut(reg, "\n"); ok {
			out = append(out, url)
		}
	}
	return out, nil
}

// FreeCount returns how many GPUs of profile are in the free set.
func (s *Store) FreeCount(ctx context.Context, profile string) (int64, error) {
	n, err := s.rdb.ZCard(ctx, keyFree(profile)).Result()
	if err != nil {
		return 0, fmt.Errorf("cluster: redis: %w", err)
	}
	return n, nil
}

// SetPromptURL records which shim holds a ComfyUI prompt, for /history.
func (s *Store) SetPromptURL(ctx context.Context, promptID, url string) error {
	if err := s.rdb.Set(ctx, keyPrompt(promptID), url, jobTTL).Err(); err != nil {
		return fmt.Errorf("cluster: redis: %w", err)
	}
	return nil
}

// PromptURL returns the shim that holds a ComfyUI prompt ("" if unknown).
func (s *Store) PromptURL(ctx context.Context, promptID string) (string, error) {
	v, err := s.rdb.Get(ctx, keyPrompt(promptID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster: redis: %w", err)
	}
	return v, nil
}

// SubscribeMatched returns a subscription to the ids of matched jobs: a
// hint only (messages are lost while disconnected). Close it when done.
func (s *Store) SubscribeMatched(ctx context.Context) *redis.PubSub {
	return s.rdb.Subscribe(ctx, channelMatched)
}
