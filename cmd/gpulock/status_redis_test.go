package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/gateway"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clusterForStatus fills a Redis with two machines: box/0 (comfyui and
// a1111, running an a1111 job of alice's), box/1 (a1111, held locally by
// exec) and two jobs in line (bob's, then carol's at high level, which goes first).
func clusterForStatus(t *testing.T) string {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := cluster.Dial(rs.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := cluster.NewStore(rdb)
	ctx := context.Background()
	for _, m := range []string{"box/0/comfyui", "box/0/a1111", "box/1/a1111"} {
		profile := m[strings.LastIndexByte(m, '/')+1:]
		require.NoError(t, st.Register(ctx, m, profile, "tok", "http://127.0.0.1:1", time.Minute))
	}
	out, _, err := st.Offer(ctx, "box/0/a1111", "a1111", "tok", time.Minute)
	require.NoError(t, err)
	require.Equal(t, cluster.OfferFree, out)
	m, err := st.Enqueue(ctx, "a1111", "job-alice", cluster.Turn{Client: "alice"}, 0, time.Minute)
	require.NoError(t, err)
	require.Equal(t, "box/0/a1111", m.GPU)
	ok, err := st.Started(ctx, "job-alice", "box/0/a1111")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, st.SetHolder(ctx, "box/1/a1111", &cluster.HolderView{Service: "exec", PID: 4242, Since: time.Now().Add(-90 * time.Second)}, time.Minute))
	_, err = st.Enqueue(ctx, "a1111", "job-bob", cluster.Turn{Client: "bob", ArrivalOrder: true}, 0, time.Minute)
	require.NoError(t, err)
	require.NoError(t, st.SetWantedOptions(ctx, map[string]json.RawMessage{"sd_model_checkpoint": json.RawMessage(`"sd_xl_base_1.0"`)}))
	_, err = st.Enqueue(ctx, "comfyui", "job-carol", cluster.Turn{Client: "carol", Priority: gpulock.PriorityHigh, ArrivalOrder: true}, 0, time.Minute)
	require.NoError(t, err)
	return rs.URL()
}

func TestStatusRedisPrintsTheClusterAsATable(t *testing.T) {
	url := clusterForStatus(t)
	e := newEnv(t)
	out, errOut, code := e.run("status", "--redis", url)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 9, out)
	assert.Contains(t, lines[0], "2 GPUs registered, 2 jobs in line")
	assert.Equal(t, `A1111 options set for the cluster: {"sd_model_checkpoint":"sd_xl_base_1.0"}`, lines[1])
	lines = append(lines[:1], lines[2:]...)
	assert.NotContains(t, out, "redis://", "the URL (and a password in it) is not printed")
	assert.Regexp(t, `^NODE\s+GPU\s+PROFILES\s+STATE\s+JOB/HOLDER\s+CLIENT\s+FOR\s+LEASE$`, lines[1])
	assert.Regexp(t, `^box\s+0\s+a1111,comfyui\s+running \(a1111\)\s+job-alice\s+alice\s+0s\s+\d+\.\ds$`, lines[2])
	assert.Regexp(t, `^box\s+1\s+a1111\s+busy\s+exec pid 4242\s+-\s+1m30s\s+`, lines[3])
	assert.Regexp(t, `^POSITION\s+PROFILE\s+CLIENT\s+PRIORITY\s+WAITED\s+JOB$`, lines[5])
	assert.Regexp(t, `^1\s+comfyui\s+carol\s+high\s+0s\s+job-carol$`, lines[6], "high goes first")
	assert.Regexp(t, `^2\s+a1111\s+bob\s+normal\s+0s\s+job-bob$`, lines[7])

	out, errOut, code = e.with("GPULOCK_REDIS="+url).run("status", "--client", "bob")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^2\s+a1111\s+bob\s+normal\s+0s\s+job-bob$`, out, "bob's job, at its place in the whole line")
	assert.NotContains(t, out, "job-carol")
}

func TestStatusRedisJSONIsTheGatewaysStatus(t *testing.T) {
	url := clusterForStatus(t)
	out, errOut, code := newEnv(t).run("status", "--redis", url, "--json")
	require.Equal(t, 0, code, errOut)
	var st gateway.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	gw := st.Gateway
	assert.Equal(t, "full", gw.Detail)
	assert.Empty(t, gw.Profile)
	assert.NotNil(t, gw.Recent, "an empty list, not null")
	require.Len(t, gw.GPUs, 3)
	assert.EqualValues(t, 2, gw.LineLength)
	assert.JSONEq(t, `{"sd_model_checkpoint":"sd_xl_base_1.0"}`, string(gw.A1111Options))
	require.Len(t, gw.Line, 2)
	assert.Equal(t, "job-carol", gw.Line[0].ID)
	assert.Equal(t, 1, gw.Line[0].Position)
	assert.Equal(t, "bob", gw.Line[1].Client)
	states := map[string]string{}
	for _, g := range gw.GPUs {
		states[g.ID] = g.State
	}
	assert.Equal(t, map[string]string{"box/0/a1111": "running", "box/0/comfyui": "idle", "box/1/a1111": "busy"}, states)
}

func TestStatusRedisUnreachableExits69(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // a port nobody listens on
	start := time.Now()
	out, errOut, code := newEnv(t).run("status", "--redis", "redis://:secret@"+addr+"/0")
	assert.Equal(t, exitUnavailable, code, out+errOut)
	assert.Less(t, time.Since(start), 10*time.Second, "bounded")
	assert.Contains(t, errOut, "cannot read the cluster at Redis "+addr+" db 0")
	assert.NotContains(t, errOut, "secret", "the password is never printed")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line, not go-redis's own log: %s", errOut)

	_, errOut, code = newEnv(t).run("status", "--redis", "http://nope")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--redis")
	_, errOut, code = newEnv(t).run("status", "--redis", "redis://"+addr, "--gpu", "0")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--gpu does not apply")
}
