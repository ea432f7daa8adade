package fakea1111

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOverrideCheckpointLoadsOnlyWhenItChangesTheModel(t *testing.T) {
	f := newFixture(t, nil)
	gen := func(body string) {
		code, out := f.post(t, "/sdapi/v1/txt2img", body)
		require.Equal(t, http.StatusOK, code, out)
	}
	gen(`{"steps":1}`) // the first job loads the default checkpoint
	loads := f.srv.Counters().ModelLoads
	gen(`{"steps":1,"override_settings":{"sd_model_checkpoint":"v1-5-pruned-emaonly"}}`)
	assert.Equal(t, loads, f.srv.Counters().ModelLoads, "the loaded model: no load")
	gen(`{"steps":1,"override_settings":{"sd_model_checkpoint":"sd_xl_base_1.0"}}`)
	assert.Equal(t, loads+1, f.srv.Counters().ModelLoads, "another model loads")
	gen(`{"steps":1,"override_settings":{"sd_model_checkpoint":"sd_xl_base_1.0.safetensors"}}`)
	gen(`{"steps":1}`) // no override: the loaded one
	assert.Equal(t, loads+1, f.srv.Counters().ModelLoads, "it stayed loaded")
	resp, err := http.Get(f.ts.URL + "/sdapi/v1/options")
	require.NoError(t, err)
	defer resp.Body.Close()
	var opts map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&opts))
	assert.Equal(t, "sd_xl_base_1.0.safetensors [31e35c80fc]", opts["sd_model_checkpoint"])
}
