package gateway

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStateRoutesStickToTheFirstMachine(t *testing.T) {
	e := newComfyCluster(t, 3, nil, nil)
	gw := e.gateways["comfyui"].URL
	other := e.addGateway(t, nil).URL
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "comfyui") == 3 })

	const wf = `{"nodes":[],"links":[]}`
	code, _, body := post(t, gw+"/api/userdata/workflows%2Fmine.json?overwrite=true", wf)
	require.Equal(t, http.StatusOK, code, body)
	code, _, body = post(t, gw+"/settings/Comfy.Theme", `"dark"`)
	require.Equal(t, http.StatusOK, code, body)
	for range 6 { // any gateway, again and again: always found
		for _, g := range []string{gw, other} {
			resp, err := http.Get(g + "/userdata/workflows%2Fmine.json")
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
			assert.Equal(t, wf, string(b))
			var list []string
			require.Equal(t, http.StatusOK, getJSONDoc(t, g+"/api/userdata?dir=workflows", &list))
			assert.Equal(t, []string{"mine.json"}, list)
			var settings map[string]any
			require.Equal(t, http.StatusOK, getJSONDoc(t, g+"/settings", &settings))
			assert.Equal(t, "dark", settings["Comfy.Theme"])
		}
	}
	// It lives on m1, the first live machine by name, and on no other.
	for _, m := range e.machines {
		resp, err := http.Get(m.front["comfyui"].URL + "/userdata/workflows%2Fmine.json")
		require.NoError(t, err)
		_ = resp.Body.Close()
		want := http.StatusNotFound
		if m.name == "m1" {
			want = http.StatusOK
		}
		assert.Equal(t, want, resp.StatusCode, m.name)
	}
}
