package gateway

import (
	"context"
	"fmt"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// TestComfyWebsocketAnswersTheFrontEndsFeatureFlags sends the first frame
// ComfyUI's front end sends on its socket and expects the server's flags
// back, true of the relay: previews without metadata, the gateway's upload
// bound. A second feature_flags frame is not answered, as ComfyUI reads
// only the first.
func TestComfyWebsocketAnswersTheFrontEndsFeatureFlags(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	ws := dialWS(t, gw, "flags")
	require.Equal(t, "status", ws.next().Type)
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	hello := []byte(`{"type":"feature_flags","data":{"supports_preview_metadata":true}}`)
	require.NoError(t, ws.conn.Write(ctx, websocket.MessageText, hello))
	f := ws.next()
	require.Equal(t, "feature_flags", f.Type)
	assert.Equal(t, false, f.Data["supports_preview_metadata"], "relayed previews carry no metadata")
	assert.EqualValues(t, MaxUploadBytes, f.Data["max_upload_size"])

	require.NoError(t, ws.conn.Write(ctx, websocket.MessageText, hello))
	id, _ := submit(t, gw, fmt.Sprintf(`{"client_id":"flags","prompt":%s}`, fakecomfy.TextToImagePrompt(2, 1)))
	for {
		f := ws.next()
		require.NotEqual(t, "feature_flags", f.Type, "only the first frame is answered")
		if f.done() && f.promptID() == id {
			break
		}
	}
}
