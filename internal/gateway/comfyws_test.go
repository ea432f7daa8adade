package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestComfyWebsocketHearsAboutTheClientsPromptsOnEveryMachine(t *testing.T) {
	e := newCluster(t, 2, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/ws?clientId=test", nil)
	require.NoError(t, err)
	defer c.CloseNow()
	want := map[string]bool{}
	for i := range 4 { // promptBody's client_id is "test"
		id, _ := submit(t, gw, promptBody(10, int64(i)))
		want[id] = true
	}
	ended := map[string]bool{}
	for len(ended) < len(want) {
		_, b, err := c.Read(ctx)
		require.NoError(t, err, "ended %d of %d", len(ended), len(want))
		var msg struct {
			Type string `json:"type"`
			Data struct {
				Node     *string `json:"node"`
				PromptID string  `json:"prompt_id"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(b, &msg))
		if msg.Type == "executing" && msg.Data.Node == nil && want[msg.Data.PromptID] {
			ended[msg.Data.PromptID] = true
		}
	}
	for _, m := range e.machines {
		st, err := m.gpu.Stats()
		require.NoError(t, err)
		assert.Positive(t, st.Jobs, "%s ran no prompt: the test proves nothing", m.name)
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}
