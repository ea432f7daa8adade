package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sdxl = "sd_xl_base_1.0.safetensors [31e35c80fc]"

// optionsAt reads GET /sdapi/v1/options from base (a machine's shim).
func optionsAt(t *testing.T, base string) map[string]any {
	t.Helper()
	resp, err := http.Get(base + PathOptions)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func postOptions(url, body string) (int, string, error) {
	resp, err := http.Post(url+PathOptions, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestModelOptionsRunOnEveryMachineInItsTurnAndOnJoiners(t *testing.T) {
	e := newCluster(t, 2, []string{"a1111"}, nil)
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "a1111") == 2 })
	m1, m2 := e.machines[0], e.machines[1]
	gw := e.gateways["a1111"].URL
	// m1's GPU is held by a local user: the change waits in line for it.
	lock, err := gpulock.New(0, gpulock.WithDir(m1.dir), gpulock.WithService("exec"))
	require.NoError(t, err)
	h, err := lock.Acquire(context.Background())
	require.NoError(t, err)
	held := true
	defer func() {
		if held {
			_ = h.Release()
		}
	}()
	waitFor(t, "m1 busy", func() bool { return e.freeCount(t, "a1111") == 1 })

	type answer struct {
		code int
		body string
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		code, body, err := postOptions(gw, `{"sd_model_checkpoint": "sd_xl_base_1.0"}`)
		done <- answer{code, body, err}
	}()
	waitFor(t, "m2 applied it and m1's job waits in line, pinned", func() bool {
		line := statusOf(t, gw, "").Line
		return optionsAt(t, m2.front["a1111"].URL)["sd_model_checkpoint"] == sdxl &&
			len(line) == 1 && line[0].Pin == "m1/0/a1111"
	})
	select {
	case a := <-done:
		t.Fatalf("answered before every machine applied it: %+v", a)
	default:
	}
	assert.NotEqual(t, sdxl, optionsAt(t, m1.front["a1111"].URL)["sd_model_checkpoint"], "m1 waits for its turn")
	held = false
	require.NoError(t, h.Release())
	select {
	case a := <-done:
		require.NoError(t, a.err)
		assert.Equal(t, http.StatusOK, a.code, a.body)
		assert.Equal(t, "null", a.body, "A1111's answer")
	case <-time.After(waitBound):
		t.Fatal("the options call never ended")
	}
	assert.Equal(t, sdxl, optionsAt(t, m1.front["a1111"].URL)["sd_model_checkpoint"])
	assert.EqualValues(t, 1, m1.a1111.Counters().ModelLoads)
	for _, gpu := range []string{"m1/0/a1111", "m2/0/a1111"} {
		last, err := e.store.LastModel(context.Background(), gpu)
		require.NoError(t, err)
		assert.Equal(t, "sd_xl_base_1.0", last, "model-aware dispatch knows what %s loaded", gpu)
	}

	// A machine that joins later has the model before its GPU is offered.
	m3 := e.startMachine(t, "m3", []string{"a1111"})
	waitFor(t, "m3 offered", func() bool { return e.freeCount(t, "a1111") == 3 })
	assert.Equal(t, sdxl, optionsAt(t, m3.front["a1111"].URL)["sd_model_checkpoint"], "applied before its first job")
	assert.EqualValues(t, 1, m3.a1111.Counters().ModelLoads)
	n, err := e.store.Client().Exists(context.Background(), "gpulock:joining:m3/0/a1111").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "joined: its sibling may take A1111 jobs for it now")
}

func TestOptionsThatFailNameTheMachinesAndOtherOptionsReachAll(t *testing.T) {
	e := newCluster(t, 2, []string{"a1111"}, nil)
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "a1111") == 2 })
	gw := e.gateways["a1111"].URL
	code, body, err := postOptions(gw, `{"sd_model_checkpoint": "sd_xl_base_1.0"}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)

	code, body, err = postOptions(gw, `{"sd_model_checkpoint": "no-such-model"}`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Contains(t, body, "options_failed")
	assert.Contains(t, body, "applied on 0 of 2 machines")
	assert.Contains(t, body, "m1/0/a1111 (500: model no-such-model not found)")
	assert.Contains(t, body, "m2/0/a1111 (500: model no-such-model not found)")
	wanted, err := e.store.WantedOptions(context.Background())
	require.NoError(t, err)
	assert.JSONEq(t, `{"sd_model_checkpoint": "sd_xl_base_1.0"}`, string(wanted), "no machine took it: the cluster keeps the model it had")

	code, body, err = postOptions(gw, `{"samples_format": "jpg"}`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, body)
	for _, m := range e.machines {
		assert.Equal(t, "jpg", optionsAt(t, m.front["a1111"].URL)["samples_format"], m.name)
		assert.Equal(t, sdxl, optionsAt(t, m.front["a1111"].URL)["sd_model_checkpoint"], m.name)
	}

	code, body, err = postOptions(gw, `[1]`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnprocessableEntity, code, body)
}

func TestModelOptionsEndWhenAMachineLeavesBeforeItsTurn(t *testing.T) {
	e := newCluster(t, 1, []string{"a1111"}, nil)
	waitFor(t, "m1 offered", func() bool { return e.freeCount(t, "a1111") == 1 })
	// A machine that registered, never offered its GPU, and dies: its
	// lease runs out while its pinned job waits.
	ctx := context.Background()
	require.NoError(t, e.store.Register(ctx, "ghost/0/a1111", "a1111", "tok", "http://127.0.0.1:1", 600*time.Millisecond))
	start := time.Now()
	code, body, err := postOptions(e.gateways["a1111"].URL, `{"sd_model_checkpoint": "sd_xl_base_1.0"}`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, code, body)
	assert.Contains(t, body, "applied on 1 of 2 machines")
	assert.Contains(t, body, "ghost/0/a1111 (503: gateway: the machine left the cluster before it applied the options)")
	assert.Less(t, time.Since(start), 5*time.Second, "within its lease and a poll")
	assert.Equal(t, sdxl, optionsAt(t, e.machines[0].front["a1111"].URL)["sd_model_checkpoint"], "the live one applied it")
	line := statusOf(t, e.gateways["a1111"].URL, "").Line
	assert.Empty(t, line, "the ghost's job left the line")
}
