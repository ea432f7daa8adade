package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/require"
)

// usedMemory reads Redis's used_memory (bytes).
func usedMemory(b *testing.B, s *Store) int64 {
	b.Helper()
	info, err := s.Client().Info(context.Background(), "memory").Result()
	require.NoError(b, err)
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(b, err)
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}

// BenchmarkRedisMemoryPerJob measures what the cluster keeps in Redis per
// job, for sizing: a held A1111 request waiting in line, a ComfyUI prompt
// waiting (a 4 KiB workflow) and a finished prompt's history (a 2 KiB
// entry, kept 24 h). It fills a fresh redis-server with jobsPerKind of
// each; run it with -benchtime=1x.
func BenchmarkRedisMemoryPerJob(b *testing.B) {
	const jobsPerKind = 5000
	r := redistest.Start(b)
	rdb, err := Dial(r.URL())
	require.NoError(b, err)
	b.Cleanup(func() { _ = rdb.Close() })
	s := NewStore(rdb)
	ctx := context.Background()
	workflow := []byte(`{"prompt":{"3":{"class_type":"KSampler","inputs":{"seed":` + strings.Repeat("1", 4000) + `}}}}`)
	entry := []byte(`{"prompt":[1],"outputs":{"9":{"images":[{"filename":"` + strings.Repeat("x", 1900) + `"}]}},"status":{"status_str":"success"}}`)
	for range b.N {
		for _, p := range []string{"a1111", "comfyui"} {
			require.NoError(b, s.Register(ctx, "box/0/"+p, p, "tok", "http://127.0.0.1:1", time.Hour))
		}
		base := usedMemory(b, s)
		for i := range jobsPerKind {
			id := fmt.Sprintf("a1111-%d-%d", i, time.Now().UnixNano())
			_, err := s.Enqueue(ctx, "a1111", id, Turn{Client: fmt.Sprintf("addr:10.0.%d.%d", i/250, i%250)}, 0, time.Second)
			require.NoError(b, err)
			require.NoError(b, s.TrackHeld(ctx, id, "gateway-0123456789abcdef"))
		}
		held := usedMemory(b, s)
		for i := range jobsPerKind {
			job := fmt.Sprintf("comfy-%d-%d", i, time.Now().UnixNano())
			_, err := s.Enqueue(ctx, "comfyui", job, Turn{Client: fmt.Sprintf("client-%d", i%50)}, 0, time.Second)
			require.NoError(b, err)
			_, err = s.AddPrompt(ctx, fmt.Sprintf("prompt-%08d-0000-4000-8000-000000000000", i), job, "gateway-0123456789abcdef", workflow)
			require.NoError(b, err)
		}
		prompts := usedMemory(b, s)
		for i := range jobsPerKind {
			id := fmt.Sprintf("prompt-%08d-0000-4000-8000-000000000000", i)
			require.NoError(b, s.PromptFinished(ctx, id, entry, "http://127.0.0.1:1", []string{id + "/ComfyUI_00001_.png"}))
		}
		done := usedMemory(b, s)
		b.ReportMetric(float64(held-base)/jobsPerKind, "B/held-a1111-job")
		b.ReportMetric(float64(prompts-held)/jobsPerKind, "B/waiting-prompt-4KiB")
		b.ReportMetric(float64(done-held)/jobsPerKind, "B/finished-prompt-2KiB-history")
		require.NoError(b, s.Client().FlushDB(ctx).Err())
	}
}
