package gateway

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPromptIDIsAddedOnlyWhenMissing(t *testing.T) {
	given := []byte(`{"prompt": {"1": {}},  "prompt_id": "abc"}`)
	out, id := promptID(given)
	assert.Equal(t, "abc", id)
	assert.Equal(t, given, out, "a body that names its prompt_id goes as sent")

	out, id = promptID([]byte(`{"prompt":{"1":{}},"client_id":"c"}`))
	require.NotEmpty(t, id)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(out, &doc))
	assert.Equal(t, id, doc["prompt_id"])
	assert.Equal(t, "c", doc["client_id"])

	out, id = promptID([]byte(`not json`))
	assert.Empty(t, id)
	assert.Equal(t, []byte(`not json`), out)
}
