package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ComfyUI websockets across gateways. The gateway that dispatches a prompt
// reads its events from the machine and publishes them on the prompt's
// client's channel; every gateway that holds a websocket of that client
// relays them. Pub/sub is at most once, as ComfyUI's own sockets are: a
// socket that is not open when a frame is sent does not get it.

// channelClient("") and keyListening("") are every client's: ComfyUI sends
// the events of a prompt without a client_id to every socket.
func channelClient(client string) string { return prefix + "cws:" + client }
func keyListening(client string) string  { return prefix + "cwsock:" + client }
func keyCRunning(client string) string   { return prefix + "crun:" + client }

// channelLine carries a hint each time the ComfyUI line (prompts waiting
// or running) changes.
const channelLine = prefix + "cline"

// Frame kinds on a client's channel: the first byte of each message.
const (
	frameText   = 't'
	frameBinary = 'b'
)

// ClientFrame is one websocket frame for a client, or a line hint.
type ClientFrame struct {
	// Line reports a hint that the line changed (no frame).
	Line bool
	// Binary reports a binary frame (a preview); else JSON text.
	Binary bool
	// Data is the frame.
	Data []byte
}

// PublishFrame sends one frame to every websocket of client that a gateway
// holds now (to every websocket for client "").
func (s *Store) PublishFrame(ctx context.Context, client string, binary bool, frame []byte) error {
	kind := byte(frameText)
	if binary {
		kind = frameBinary
	}
	msg := make([]byte, 0, 1+len(frame))
	msg = append(append(msg, kind), frame...)
	if err := s.rdb.Publish(ctx, channelClient(client), msg).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// publishLine adds the line hint to a pipeline that changes the line.
func publishLine(ctx context.Context, p redis.Pipeliner) { p.Publish(ctx, channelLine, "") }

// MarkListening records that a websocket of client is open on a gateway,
// for ttl (renew it while the socket stays open): prompts of a client that
// nobody listens to are not relayed.
func (s *Store) MarkListening(ctx context.Context, client string, ttl time.Duration) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, keyListening(client), "1", ttl)
		p.Set(ctx, keyListening(""), "1", ttl) // some socket is open
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	return nil
}

// runningTTL bounds a client's running-prompt record if the gateway that
// relays the prompt dies; the relay renews it with each event.
const runningTTL = time.Hour

// SetRunningNode records the node that client's prompt runs now ("" when
// it has not started a node), for a websocket of the client that opens
// later (ComfyUI sends it the current executing).
func (s *Store) SetRunningNode(ctx context.Context, client, prompt, node string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, keyCRunning(client), prompt, node)
		p.PExpire(ctx, keyCRunning(client), runningTTL)
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	return nil
}

// ClearRunning forgets client's running prompt.
func (s *Store) ClearRunning(ctx context.Context, client, prompt string) error {
	if err := s.rdb.HDel(ctx, keyCRunning(client), prompt).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// RunningNodes returns client's running prompts and the node each runs.
func (s *Store) RunningNodes(ctx context.Context, client string) (map[string]string, error) {
	v, err := s.rdb.HGetAll(ctx, keyCRunning(client)).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	return v, nil
}

// PromptsRemaining returns how many ComfyUI prompts of the cluster wait in
// line or run: ComfyUI's queue_remaining for the whole cluster.
func (s *Store) PromptsRemaining(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, keyCActive).Result()
	if err != nil {
		return 0, redisErr(err)
	}
	return n, nil
}

// DispatchNeeds tells, in one round trip (two when the prompt names an
// upload), what a prompt of client needs on
// the machine at url before it is dispatched there: whether a websocket of
// the client is open (any socket for client "": then its events are
// relayed), and which of the
// upload keys it names (see UploadKey) the machine has not received.
func (s *Store) DispatchNeeds(ctx context.Context, client, url string, names []string) (listening bool, missing []string, err error) {
	return s.PromptNeeds(ctx, "", client, url, names)
}

// PromptNeeds is DispatchNeeds for prompt, which it also records, in the
// same round trip and before it reads whether the client listens, among
// the client's prompts on their machines (see ClientPrompts): a socket of
// the client that opens after the read finds the prompt there.
func (s *Store) PromptNeeds(ctx context.Context, prompt, client, url string, names []string) (listening bool, missing []string, err error) {
	pipe := s.rdb.Pipeline()
	if prompt != "" && client != "" {
		notePrompt(ctx, pipe, client, prompt, url)
	}
	lis := pipe.Exists(ctx, keyListening(client))
	var digests *redis.SliceCmd
	if len(names) > 0 {
		digests = pipe.HMGet(ctx, keyCUploads, names...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, nil, redisErr(err)
	}
	listening = lis.Val() == 1
	if digests == nil {
		return listening, nil, nil
	}
	var have []string
	for i, d := range digests.Val() {
		if d, ok := d.(string); ok {
			have = append(have, names[i], names[i]+"@"+d)
		}
	}
	if len(have) == 0 {
		return listening, nil, nil
	}
	had := make([]any, 0, len(have)/2)
	for i := 1; i < len(have); i += 2 {
		had = append(had, have[i])
	}
	got, err := s.rdb.SMIsMember(ctx, keyCUploadHad(url), had...).Result()
	if err != nil {
		return listening, nil, fmt.Errorf("cluster: redis: %w", err)
	}
	for i, ok := range got {
		if !ok {
			missing = append(missing, have[2*i])
		}
	}
	return listening, missing, nil
}
