package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startGateway starts one more gateway of profile on e's Redis.
func (e *clusterEnv) startGateway(t *testing.T, profile string, set func(*Config)) string {
	t.Helper()
	cfg := Config{Profile: profile, Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()}
	set(&cfg)
	g, err := New(cfg)
	require.NoError(t, err)
	g.Start()
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	return srv.URL
}

// postAs sends an A1111 job for client and returns the response, its body read.
func postAs(t *testing.T, url, client string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/sdapi/v1/txt2img", strings.NewReader(`{"steps":2}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderClient, client)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func statusOf(t *testing.T, url, query string) GatewayStatus {
	t.Helper()
	resp, err := http.Get(url + PathStatus + query)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st Status
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Gateway
}

func TestHeldRequestLearnsItsPlace(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	waitFor(t, "the GPU offered", func() bool { return e.freeCount(t, "a1111") == 1 })
	// A local user holds the GPU: jobs wait in the cluster's line.
	lock, err := gpulock.New(0, gpulock.WithDir(e.machines[0].dir), gpulock.WithService("exec"))
	require.NoError(t, err)
	h, err := lock.Acquire(context.Background())
	require.NoError(t, err)
	released := false
	release := func() {
		if !released {
			released = true
			require.NoError(t, h.Release())
		}
	}
	defer release()
	patient := e.gateways["a1111"].URL
	waitFor(t, "the GPU busy", func() bool {
		gpus := statusOf(t, patient, "").GPUs
		return len(gpus) == 1 && gpus[0].State == cluster.GPUBusy
	})
	gpu := statusOf(t, patient, "").GPUs[0]
	require.NotNil(t, gpu.Holder)
	assert.Equal(t, "exec", gpu.Holder.Service, "the member tells who holds the lock")
	require.NotNil(t, gpu.Since)

	first := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, patient+"/sdapi/v1/txt2img", strings.NewReader(`{"steps":2}`))
		req.Header.Set(HeaderClient, "alice")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		first <- resp // nil on error
	}()
	waitFor(t, "alice's job in line", func() bool { return len(statusOf(t, patient, "").Line) == 1 })

	impatient := e.startGateway(t, "a1111", func(c *Config) { c.QueueTimeout = 300 * time.Millisecond })
	resp, body := postAs(t, impatient, "bob")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	assert.Equal(t, "2", resp.Header.Get(HeaderPosition), "bob was second in line when he gave up")
	assert.Equal(t, "2", resp.Header.Get(HeaderLineLength))
	var e503 struct {
		Error struct {
			Type       string `json:"type"`
			Position   int    `json:"position"`
			LineLength int    `json:"line_length"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e503), body)
	assert.Equal(t, "queue_timeout", e503.Error.Type)
	assert.Equal(t, 2, e503.Error.Position)
	assert.Equal(t, 2, e503.Error.LineLength)

	full := e.startGateway(t, "a1111", func(c *Config) { c.MaxQueue = 1 })
	resp, body = postAs(t, full, "carol")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	assert.Contains(t, body, "queue_full")
	assert.Equal(t, "2", resp.Header.Get(HeaderPosition), "carol would have been second")
	assert.Equal(t, "1", resp.Header.Get(HeaderLineLength))

	// The status by client shows alice's place; another client's is empty.
	gw := statusOf(t, patient, "?"+QueryClient+"=alice")
	require.Len(t, gw.Line, 1)
	assert.Equal(t, 1, gw.Line[0].Position)
	assert.Equal(t, "alice", gw.Line[0].Client)
	assert.Equal(t, "normal", gw.Line[0].Priority)
	assert.Greater(t, gw.Line[0].WaitedSeconds, 0.2, "alice has waited while bob timed out")
	assert.Empty(t, statusOf(t, patient, "?"+QueryClient+"=bob").Line)

	release()
	select {
	case resp := <-first:
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		waited, err := strconv.ParseFloat(resp.Header.Get(HeaderWait), 64)
		require.NoError(t, err, "the final answer tells the wait")
		assert.Greater(t, waited, 0.2, "alice waited at least while bob timed out")
	case <-time.After(waitBound):
		t.Fatal("alice's job never ran")
	}
}

func TestMaskedStatusShowsTheHolderWithoutItsCommand(t *testing.T) {
	st := newStore(t, redistest.Start(t))
	ctx := context.Background()
	require.NoError(t, st.Register(ctx, "alpha/0/comfyui", "comfyui", "tok", "http://127.0.0.1:3188", time.Minute))
	require.NoError(t, st.SetHolder(ctx, "alpha/0/comfyui",
		&cluster.HolderView{Service: "exec", PID: 77, Host: "alpha", Command: "python secret-job.py --token=abc", Since: time.Now()}, time.Minute))
	g, err := New(Config{Profile: "comfyui", Store: st, Logger: quietLogger()})
	require.NoError(t, err)
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })

	full := getStatus(t, srv, "")
	masked := getStatus(t, srv, "203.0.113.9")
	require.Len(t, full.GPUs, 1)
	require.Len(t, masked.GPUs, 1)
	h := full.GPUs[0].Holder
	require.NotNil(t, h)
	assert.Equal(t, cluster.GPUBusy, full.GPUs[0].State)
	assert.Equal(t, "python secret-job.py --token=abc", h.Command, "a caller on the machine sees it all")
	assert.Equal(t, 77, h.PID)
	require.Equal(t, "masked", masked.Detail)
	h = masked.GPUs[0].Holder
	require.NotNil(t, h)
	assert.Equal(t, "exec", h.Service)
	assert.Empty(t, h.Command, "no command line for a remote caller")
	assert.Zero(t, h.PID)
	assert.Empty(t, h.Host)
}
