package fakecomfy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadImageNeedsTheUpload(t *testing.T) {
	f := newFixture(t, nil)
	body, _ := json.Marshal(PromptRequest{Prompt: LoadImagePrompt(1, 0, "sub/in.png")})
	code, out := f.post(t, "/prompt", string(body))
	require.Equal(t, http.StatusBadRequest, code, out)
	var refused struct {
		Error      ErrorDetail          `json:"error"`
		NodeErrors map[string]NodeError `json:"node_errors"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &refused))
	assert.Equal(t, ErrTypeOutputsFailed, refused.Error.Type)
	require.Contains(t, refused.NodeErrors, "10")
	assert.Contains(t, refused.NodeErrors["10"].Errors[0].Details, "Invalid image file: sub/in.png")

	content := bytes.Repeat([]byte("mask"), 75)
	for _, tt := range []struct {
		sub  string
		code int
	}{{"../up", http.StatusBadRequest}, {"/abs", http.StatusBadRequest}, {"sub", http.StatusOK}} {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("image", "in.png")
		require.NoError(t, err)
		_, _ = fw.Write(content)
		require.NoError(t, mw.WriteField("subfolder", tt.sub))
		require.NoError(t, mw.Close())
		resp, err := http.Post(f.ts.URL+"/upload/mask", mw.FormDataContentType(), &buf)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, tt.code, resp.StatusCode, tt.sub)
	}
	up, ok := f.srv.Uploaded("sub/in.png")
	require.True(t, ok)
	assert.Equal(t, int64(len(content)), up.Size)
	assert.Equal(t, sha256.Sum256(content), up.SHA256)

	code, out = f.post(t, "/prompt", string(body))
	require.Equal(t, http.StatusOK, code, out)
}

func TestPreviewsAreBinaryFramesForThePromptsClient(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Previews = true })
	c := f.dial(t, "cl")
	f.submit(t, "cl", "", 2)
	previews := 0
	for previews < 2 {
		typ, b, err := c.conn.Read(t.Context())
		require.NoError(t, err)
		if typ != websocket.MessageBinary {
			continue
		}
		require.Greater(t, len(b), 8)
		assert.Equal(t, uint32(binaryPreviewImage), binary.BigEndian.Uint32(b[0:4]))
		assert.Equal(t, uint32(previewPNG), binary.BigEndian.Uint32(b[4:8]))
		assert.Equal(t, "\x89PNG", string(b[8:12]))
		previews++
	}
}
