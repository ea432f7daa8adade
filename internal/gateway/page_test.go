package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pageCluster is a Redis with three registered GPUs (two comfyui, busy;
// one a1111, offered) and one comfyui job waiting, behind a comfyui gateway.
func pageCluster(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := cluster.Dial(rs.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := cluster.NewStore(rdb)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	for _, r := range []struct{ node, profile, url string }{
		{"alpha", "comfyui", "http://127.0.0.1:3188"},
		{"beta", "comfyui", "http://127.0.0.2:3188"},
		{"beta", "a1111", "http://127.0.0.2:3178"},
	} {
		require.NoError(t, st.Register(ctx, cluster.GPUID(r.node, 0, r.profile), r.profile, "tok", r.url, time.Minute))
	}
	out, _, err := st.Offer(ctx, cluster.GPUID("beta", 0, "a1111"), "a1111", "tok", time.Second)
	require.NoError(t, err)
	require.Equal(t, cluster.OfferFree, out)
	m, err := st.Enqueue(ctx, "comfyui", "job-1", cluster.Turn{}, 0, time.Second)
	require.NoError(t, err)
	require.Equal(t, cluster.StateWaiting, m.State)
	g, err := New(Config{Profile: "comfyui", Store: st, Logger: quietLogger()})
	require.NoError(t, err)
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	return srv, "job-1"
}

func getStatus(t *testing.T, srv *httptest.Server, forwardedFor string) GatewayStatus {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+PathStatus, nil)
	require.NoError(t, err)
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st Status
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Gateway
}

func TestGatewayStatusShowsEveryRegisteredGPUAndTheLine(t *testing.T) {
	srv, job := pageCluster(t)
	gw := getStatus(t, srv, "")
	assert.Equal(t, "comfyui", gw.Profile)
	assert.Equal(t, "full", gw.Detail)
	require.Len(t, gw.GPUs, 3)
	byID := map[string]cluster.GPUView{}
	for _, g := range gw.GPUs {
		byID[g.ID] = g
	}
	a := byID["alpha/0/comfyui"]
	assert.Equal(t, "alpha", a.Node)
	assert.Equal(t, "comfyui", a.Profile)
	assert.Equal(t, "http://127.0.0.1:3188", a.URL)
	assert.False(t, a.Free)
	assert.Greater(t, a.LeaseSeconds, 30.0)
	assert.True(t, byID["beta/0/a1111"].Free)
	assert.Equal(t, "http://127.0.0.2:3178", byID["beta/0/a1111"].URL)
	assert.Equal(t, int64(1), gw.LineLength)
	require.Len(t, gw.Line, 1)
	assert.Equal(t, job, gw.Line[0].ID)
	assert.Equal(t, "comfyui", gw.Line[0].Profile)
	assert.Equal(t, cluster.StateWaiting, gw.Line[0].State)
	assert.GreaterOrEqual(t, gw.Line[0].WaitedSeconds, 0.0)
	assert.Less(t, gw.Line[0].WaitedSeconds, 60.0)
	assert.Equal(t, map[string]int{"comfyui": 1}, gw.WaitingByProfile)
}

func TestGatewayStatusMasksURLsForRemoteCallers(t *testing.T) {
	srv, _ := pageCluster(t)
	gw := getStatus(t, srv, "203.0.113.7")
	assert.Equal(t, "masked", gw.Detail)
	require.Len(t, gw.GPUs, 3)
	for _, g := range gw.GPUs {
		assert.Equal(t, maskedURL, g.URL, g.ID)
		assert.NotEmpty(t, g.Node)
	}
}

func TestGatewayServesThePageAndItsEvents(t *testing.T) {
	srv, job := pageCluster(t)
	resp, err := srv.Client().Get(srv.URL + "/gpulock/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.Contains(t, string(body), `<script src="page.js"`)

	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/gpulock/events", nil)
	require.NoError(t, err)
	resp, err = srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var data string
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = d
			break
		}
	}
	require.NotEmpty(t, data, "no event: %v", sc.Err())
	var st Status
	require.NoError(t, json.Unmarshal([]byte(data), &st))
	require.Len(t, st.Gateway.Line, 1)
	assert.Equal(t, job, st.Gateway.Line[0].ID)
	assert.Len(t, st.Gateway.GPUs, 3)
}

func TestGatewayStatusListsItsFinishedDispatches(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "a1111") == 1 })
	srv := e.gateways["a1111"]
	code, gpu, body := post(t, srv.URL+"/sdapi/v1/txt2img", `{"steps":2}`)
	require.Equal(t, http.StatusOK, code, body)
	gw := getStatus(t, srv, "")
	require.Len(t, gw.Recent, 1)
	f := gw.Recent[0]
	assert.Equal(t, gpu, f.Service)
	assert.Equal(t, "POST /sdapi/v1/txt2img", f.Route)
	assert.Equal(t, "OK", f.Result)
	assert.NotEmpty(t, f.Client)
	assert.Positive(t, f.RanSeconds)
	require.Len(t, gw.GPUs, 1)
	assert.Equal(t, gpu, gw.GPUs[0].ID)
}
