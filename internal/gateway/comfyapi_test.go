package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/require"
)

// longSteps makes a prompt that runs until it is interrupted (40 s).
const longSteps = 4000

// newComfyCluster starts n ComfyUI machines, their fakes changed by fake,
// and one gateway changed by gw.
func newComfyCluster(t testing.TB, n int, fake func(*fakecomfy.Config), gw func(*Config)) *clusterEnv {
	t.Helper()
	e := &clusterEnv{redis: redistest.Start(t), gateways: map[string]*httptest.Server{}, comfyConfig: fake}
	e.store = newStore(t, e.redis)
	for i := range n {
		e.machines = append(e.machines, e.startMachine(t, "m"+string(rune('1'+i)), []string{"comfyui"}))
	}
	e.gateways["comfyui"] = e.addGateway(t, gw)
	return e
}

// addGateway starts one more ComfyUI gateway on e's Redis.
func (e *clusterEnv) addGateway(t testing.TB, mod func(*Config)) *httptest.Server {
	t.Helper()
	cfg := Config{Profile: "comfyui", Store: newStore(t, e.redis), Lease: testLease, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	require.NoError(t, err)
	g.Start()
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	return srv
}

// machineNamed returns e's machine called name.
func (e *clusterEnv) machineNamed(t testing.TB, name string) *machine {
	t.Helper()
	for _, m := range e.machines {
		if m.name == name {
			return m
		}
	}
	t.Fatalf("no machine %q", name)
	return nil
}

// modelPrompt is a POST /prompt body of client that loads ckpt.
func modelPrompt(steps int, seed int64, client, ckpt string) string {
	graph := strings.Replace(string(fakecomfy.TextToImagePrompt(steps, seed)), "v1-5-pruned-emaonly.safetensors", ckpt, 1)
	return fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, graph, client)
}

// submitWith posts a prompt body (with headers hdr) and returns its id and the
// response's headers.
func submitWith(t testing.TB, gw, body string, hdr map[string]string) (string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, gw+"/prompt", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var doc struct {
		PromptID string `json:"prompt_id"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	require.NotEmpty(t, doc.PromptID)
	return doc.PromptID, resp.Header
}

// promptState reads GET /gpulock/prompt/{id}.
func promptState(t testing.TB, gw, id string) (PromptStatus, int) {
	t.Helper()
	var st PromptStatus
	code := getJSONDoc(t, gw+PathPrompt+id, &st)
	return st, code
}

// waitState waits until prompt id is in state and returns its status.
func waitState(t testing.TB, gw, id, state string) PromptStatus {
	t.Helper()
	var st PromptStatus
	waitFor(t, "prompt "+id+" "+state, func() bool {
		st, _ = promptState(t, gw, id)
		return st.State == state
	})
	return st
}

// waitRunningAt waits until prompt id runs on its machine's backend (not
// only dispatched) and returns the machine.
func waitRunningAt(t testing.TB, e *clusterEnv, gw, id string) *machine {
	t.Helper()
	st := waitState(t, gw, id, "running")
	m := e.machineNamed(t, st.Node)
	waitFor(t, "prompt "+id+" running on "+m.name, func() bool {
		var q clusterQueue
		if err := getJSONInto(m.front["comfyui"].URL+"/queue", &q); err != nil {
			return false
		}
		for _, r := range q.Running {
			if tupleID(r) == id {
				return true
			}
		}
		return false
	})
	return m
}

func getJSONInto(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// historyStatus returns the status_str and message types of prompt id's
// entry in the gateway's /history/{id}.
func historyStatus(t testing.TB, gw, id string) (string, []string) {
	t.Helper()
	var doc map[string]struct {
		Status struct {
			StatusStr string              `json:"status_str"`
			Messages  [][]json.RawMessage `json:"messages"`
		} `json:"status"`
	}
	require.Equal(t, http.StatusOK, getJSONDoc(t, gw+"/history/"+id, &doc))
	e := doc[id]
	var kinds []string
	for _, m := range e.Status.Messages {
		var k string
		if len(m) > 0 && json.Unmarshal(m[0], &k) == nil {
			kinds = append(kinds, k)
		}
	}
	return e.Status.StatusStr, kinds
}
