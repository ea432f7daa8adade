package shim

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func FuzzParseRoute(f *testing.F) {
	for _, seed := range []string{"POST /prompt", "post /sdapi/v1/train/*", "* /x", "", "POST", "GET nopath", "POST /a b", "POST /**/x"} {
		f.Add(seed, "/sdapi/v1/train/embedding")
	}
	f.Fuzz(func(t *testing.T, s, path string) {
		r, err := ParseRoute(s)
		if err != nil {
			return
		}
		require.True(t, strings.HasPrefix(r.Pattern, "/"))
		require.Equal(t, strings.ToUpper(r.Method), r.Method)
		// Matching never panics, and a pattern without wildcards matches itself only.
		matched := r.matches(r.Method, path)
		if !strings.Contains(r.Pattern, "*") {
			require.Equal(t, path == r.Pattern, matched)
		}
		require.True(t, r.matches(r.Method, strings.ReplaceAll(r.Pattern, "*", "")))
	})
}

func FuzzPreparePrompt(f *testing.F) {
	for _, seed := range []string{
		`{"prompt":{"1":{"class_type":"SaveImage","inputs":{}}}}`,
		`{"prompt":{},"prompt_id":"abc","client_id":"me"}`,
		`{"prompt":null}`, `{}`, `[]`, `null`, `{"prompt":1,"prompt_id":7}`, `not json`,
		// Python's json accepts these, Go's does not.
		`{"prompt":{"1":{"inputs":{"cfg":NaN}}}}`, `{"prompt":{"1":{"inputs":{"cfg":Infinity}}}}`,
		`{"prompt":{"1":{"inputs":{"cfg":-Infinity}}}}`, `{"prompt":{},"prompt":{"2":{}}}`,
		`{"prompt":{"1":{"inputs":{"seed":123456789012345678901234567890}}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, id, _, v := preparePrompt(body, nil, "shim-client")
		if v != gpuWork {
			require.Equal(t, body, out, "a body that is not a prompt passes unchanged")
			if v == notGPUWork {
				require.True(t, json.Valid(body), "only a body Go reads is judged no GPU work")
			}
			return
		}
		require.NotEmpty(t, id)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(out, &m))
		var gotID, client string
		require.NoError(t, json.Unmarshal(m["prompt_id"], &gotID))
		require.Equal(t, id, gotID, "the id the shim tracks is the one ComfyUI gets")
		require.NoError(t, json.Unmarshal(m["client_id"], &client))
		require.NotEmpty(t, client)
	})
}

func FuzzChangesModel(f *testing.F) {
	for _, seed := range []string{
		`{"sd_model_checkpoint":"x"}`, `{"CLIP_stop_at_last_layers":2}`, `{"sd_vae":NaN}`,
		`{"x":Infinity,"sd_unet":"a"}`, `{"x":-Infinity}`, `{"x":1,"x":2}`, `[]`, `null`, `not json`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v := changesModel(body, nil)
		if !json.Valid(body) {
			require.Equal(t, unknownWork, v, "a body Go cannot read fails closed")
			return
		}
		require.NotEqual(t, unknownWork, v)
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			_, a := m["sd_model_checkpoint"]
			_, b := m["sd_vae"]
			_, c := m["sd_unet"]
			require.Equal(t, a || b || c, v == gpuWork)
		}
	})
}
