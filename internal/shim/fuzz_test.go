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
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, id, ok := preparePrompt(body, "shim-client")
		if !ok {
			require.Equal(t, body, out, "a body that is not a prompt passes unchanged")
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
