package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gpulock/gpulock/internal/fakea1111"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestA1111ProgressGoesToTheMachineRunningTheClientsJob(t *testing.T) {
	e := newCluster(t, 3, []string{"a1111"}, nil)
	gw := e.gateways["a1111"].URL
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "a1111") == 3 })
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, gw+"/sdapi/v1/txt2img", strings.NewReader(`{"steps":60}`))
		req.Header.Set(HeaderClient, "alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{body: err.Error()}
			return
		}
		_ = resp.Body.Close()
		done <- result{code: resp.StatusCode}
	}()
	waitFor(t, "alice's job running", func() bool {
		for _, m := range e.machines {
			if st, err := m.gpu.Stats(); err == nil && len(st.Running) > 0 {
				return true
			}
		}
		return false
	})
	for range 6 { // a random machine would be idle two times in three
		req, err := http.NewRequest(http.MethodGet, gw+"/sdapi/v1/progress", nil)
		require.NoError(t, err)
		req.Header.Set(HeaderClient, "alice")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var p fakea1111.Progress
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
		_ = resp.Body.Close()
		assert.Equal(t, 1, p.State.JobCount, "progress of alice's job, not of an idle machine")
	}
	r := await(t, done)
	assert.Equal(t, http.StatusOK, r.code, r.body)
	waitFor(t, "the client's record gone with its job", func() bool {
		n, err := e.store.Client().Exists(t.Context(), "gpulock:aclient:alice").Result()
		return err == nil && n == 0
	})
}

func TestA1111InterruptGoesToTheMachineRunningTheClientsJob(t *testing.T) {
	e := newCluster(t, 3, []string{"a1111"}, nil)
	gw := e.gateways["a1111"].URL
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "a1111") == 3 })
	type answer struct {
		code int
		body map[string]any
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, gw+"/sdapi/v1/txt2img", strings.NewReader(`{"steps":100000}`))
		req.Header.Set(HeaderClient, "alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		done <- answer{code: resp.StatusCode, body: body, err: err}
	}()
	// Running at its backend, not only dispatched: an interrupt that comes
	// before the job began stops nothing (A1111 interrupts what runs).
	waitFor(t, "alice's job running", func() bool {
		n, err := e.store.Client().Exists(t.Context(), "gpulock:aclient:alice").Result()
		if err != nil || n != 1 {
			return false
		}
		for _, m := range e.machines {
			if st, err := m.gpu.Stats(); err == nil && len(st.Running) > 0 {
				return true
			}
		}
		return false
	})
	req, err := http.NewRequest(http.MethodPost, gw+"/sdapi/v1/interrupt", nil)
	require.NoError(t, err)
	req.Header.Set(HeaderClient, "alice")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	select {
	case a := <-done:
		require.NoError(t, a.err)
		assert.Equal(t, http.StatusOK, a.code)
		raw, _ := a.body["info"].(string)
		var info struct{ Interrupted bool }
		require.NoError(t, json.Unmarshal([]byte(raw), &info), raw)
		assert.True(t, info.Interrupted, "alice's job stopped on its own machine")
	case <-time.After(waitBound):
		t.Fatal("alice's 100000-step job was not interrupted: the interrupt went to another machine")
	}
}
