package gateway

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOutputNamesCarryTheirMachineAndComeBack(t *testing.T) {
	const machine = "http://127.0.0.1:8188"
	entry := json.RawMessage(`{"prompt": [1], "outputs": {"9": {"images": [
		{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"},
		{"filename": "p.png", "subfolder": "a/b", "type": "temp"},
		{"filename": "in.png", "subfolder": "", "type": "input"}], "text": ["hello"]}}, "status": {"status_str": "success"}}`)
	var got struct {
		Prompt  []int `json:"prompt"`
		Outputs map[string]struct {
			Images []historyImage `json:"images"`
			Text   []string       `json:"text"`
		} `json:"outputs"`
		Status map[string]string `json:"status"`
	}
	out := rewriteEntry(entry, machine)
	require.NoError(t, json.Unmarshal(out, &got))
	assert.Equal(t, []int{1}, got.Prompt, "the rest of the entry is kept")
	assert.Equal(t, "success", got.Status["status_str"])
	assert.Equal(t, []string{"hello"}, got.Outputs["9"].Text)
	imgs := got.Outputs["9"].Images
	require.Len(t, imgs, 3)
	assert.Equal(t, "in.png", imgs[2].Filename)
	assert.Empty(t, imgs[2].Subfolder, "inputs are on every machine: kept as they are")
	for i, orig := range []string{"", "a/b"} {
		u, sub, ok, err := machineSubfolder(imgs[i].Subfolder)
		require.NoError(t, err)
		require.True(t, ok, imgs[i].Subfolder)
		assert.Equal(t, machine, u)
		assert.Equal(t, orig, sub)
	}
	assert.JSONEq(t, string(out), string(rewriteEntry(out, "http://127.0.0.1:1")), "names handed out are not renamed twice")

	frame := []byte(`{"type": "executed", "data": {"node": "9", "prompt_id": "p", "output": {"images": [{"filename": "x.png", "subfolder": "", "type": "output"}]}}}`)
	var ev struct {
		Data struct {
			PromptID string `json:"prompt_id"`
			Output   struct {
				Images []historyImage `json:"images"`
			} `json:"output"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(rewriteExecuted(frame, machine), &ev))
	assert.Equal(t, "p", ev.Data.PromptID)
	assert.Equal(t, outputSubfolder(machine, ""), ev.Data.Output.Images[0].Subfolder)
}

func TestViewRefusesNamesTheClusterDidNotHandOut(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	live := "http://" + e.machines[0].front["comfyui"].Listener.Addr().String()
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, sub string
		code      int
		want      string
	}{
		{"not base64", outputPrefix + "!!", http.StatusBadRequest, "bad_output_name"},
		{"a path out of the folder", outputPrefix + enc(live) + "/../../etc", http.StatusBadRequest, "bad_output_name"},
		{"a machine not in the cluster", outputPrefix + enc("http://127.0.0.1:1"), http.StatusNotFound, "machine_gone"},
		{"a live machine, a file it did not write", outputPrefix + enc(live), http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"filename": {"ComfyUI_00001_.png"}, "subfolder": {tt.sub}, "type": {"output"}}
			code, _, body := get(t, gw+"/view?"+q.Encode())
			assert.Equal(t, tt.code, code, body)
			assert.Contains(t, body, tt.want)
		})
	}
}

// get fetches url and returns the status, content type and body.
func get(t testing.TB, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}
