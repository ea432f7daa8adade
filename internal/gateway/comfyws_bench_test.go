package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// BenchmarkComfyRelayLatency measures what the cluster adds to a ComfyUI
// event: one machine, a client with two sockets under one clientId, one on
// the fake backend itself and one on the gateway; for each progress frame
// of a 200-step prompt, the gap between its arrival on the two (machine ->
// shim -> relaying gateway -> Redis pub/sub -> client's gateway -> client).
//
//	go test -run '^$' -bench ComfyRelayLatency -benchtime 3x ./internal/gateway/
func BenchmarkComfyRelayLatency(b *testing.B) {
	e := newCluster(b, 0, []string{"comfyui"}, nil)
	m := e.startComfyMachine(b, "m1")
	waitFor(b, "a free GPU", func() bool { return e.freeCount(b, "comfyui") == 1 })
	gw := e.gateways["comfyui"].URL
	var gaps []time.Duration
	for i := 0; b.Loop(); i++ {
		client := fmt.Sprintf("bench%d", i)
		ctx, cancel := context.WithTimeout(b.Context(), waitBound)
		direct, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(m.backend, "http")+"/ws?clientId="+client, nil)
		require.NoError(b, err)
		through, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/ws?clientId="+client, nil)
		require.NoError(b, err)
		var mu sync.Mutex
		seen := map[string][2]time.Time{}
		var wg sync.WaitGroup
		read := func(c *websocket.Conn, side int) {
			for {
				typ, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				now := time.Now()
				if typ != websocket.MessageText {
					continue
				}
				var f struct {
					Type string `json:"type"`
					Data struct {
						Value    int     `json:"value"`
						Node     *string `json:"node"`
						PromptID string  `json:"prompt_id"`
					} `json:"data"`
				}
				_ = json.Unmarshal(data, &f)
				if f.Type == "progress" {
					mu.Lock()
					v := seen[fmt.Sprint(f.Data.Value)]
					v[side] = now
					seen[fmt.Sprint(f.Data.Value)] = v
					mu.Unlock()
				}
				if f.Type == "executing" && f.Data.Node == nil && f.Data.PromptID != "" {
					return
				}
			}
		}
		wg.Go(func() { read(direct, 0) })
		wg.Go(func() { read(through, 1) })
		submit(b, gw, fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.TextToImagePrompt(200, int64(i)), client))
		wg.Wait()
		cancel()
		_ = direct.CloseNow()
		_ = through.CloseNow()
		for _, v := range seen {
			if !v[0].IsZero() && !v[1].IsZero() {
				gaps = append(gaps, v[1].Sub(v[0]))
			}
		}
	}
	require.NotEmpty(b, gaps)
	slices.Sort(gaps)
	p := func(q float64) float64 { return float64(gaps[int(q*float64(len(gaps)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(gaps)), "frames")
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(p(1), "max-ms")
}

// BenchmarkComfyBeforePrompt measures what readying a machine adds to a
// prompt's dispatch: for a client with no websocket open (one Redis round
// trip), and for one with a socket (the machine's websocket is opened
// through its shim and its first frame read before the dispatch).
//
//	go test -run '^$' -bench ComfyBeforePrompt ./internal/gateway/
func BenchmarkComfyBeforePrompt(b *testing.B) {
	e := newCluster(b, 1, []string{"comfyui"}, nil)
	waitFor(b, "a free GPU", func() bool { return e.freeCount(b, "comfyui") == 1 })
	g, err := New(Config{Profile: "comfyui", Store: newStore(b, e.redis), Lease: testLease, Logger: quietLogger()})
	require.NoError(b, err)
	b.Cleanup(g.Close)
	url := "http://" + e.machines[0].front["comfyui"].Listener.Addr().String()
	for _, listening := range []bool{false, true} {
		b.Run(fmt.Sprintf("listening=%v", listening), func(b *testing.B) {
			client := fmt.Sprintf("before-%v", listening)
			if listening {
				require.NoError(b, e.store.MarkListening(b.Context(), client, time.Minute))
			}
			body := []byte(fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.TextToImagePrompt(1, 0), client))
			for b.Loop() {
				_, stop := g.beforePrompt(b.Context(), "bench-prompt", body, url)
				stop()
			}
		})
	}
}
