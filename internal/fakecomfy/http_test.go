package fakecomfy

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOriginCheck(t *testing.T) {
	f := newFixture(t, nil)
	host := strings.TrimPrefix(f.ts.URL, "http://")
	tests := []struct {
		name   string
		host   string
		origin string
		code   int
	}{
		{"no origin", host, "", 200},
		{"same origin", host, "http://" + host, 200},
		{"foreign origin on loopback host", host, "http://evil.example", 403},
		{"other port on loopback host", host, "http://127.0.0.1:1", 403},
		{"localhost name", "localhost:8188", "http://example.com", 403},
		{"non-loopback host is not checked", "comfy.example:8188", "http://other.example", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, f.ts.URL+"/system_stats", nil)
			require.NoError(t, err)
			req.Host = tt.host
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.code, resp.StatusCode)
		})
	}
}

func TestStaticRoutes(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		path string
		code int
		has  string
	}{
		{"/", 200, "ComfyUI"},
		{"/api/", 200, "ComfyUI"},
		{"/object_info", 200, "KSampler"},
		{"/api/object_info/SaveImage", 200, `"output_node":true`},
		{"/system_stats", 200, "vram_free"},
		{"/api/queue", 200, "queue_pending"},
		{"/history", 200, "{}"},
		{"/embeddings", 200, "[]"},
		{"/view?filename=nope.png", 404, ""},
		{"/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(f.ts.URL + tt.path)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tt.code, resp.StatusCode)
			assert.Contains(t, string(body), tt.has)
		})
	}
}

// multipartImage builds an /upload/image body with an image of size bytes.
func multipartImage(t *testing.T, name string, size int) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("image", name)
	require.NoError(t, err)
	_, err = fw.Write(bytes.Repeat([]byte{7}, size))
	require.NoError(t, err)
	require.NoError(t, mw.WriteField("type", "input"))
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), &buf
}

func TestUploadImage(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxUploadBytes = 4096 })
	tests := []struct {
		name string
		size int
		code int
	}{
		{"small", 100, 200},
		{"over the limit", 10000, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := multipartImage(t, "in.png", tt.size)
			resp, err := http.Post(f.ts.URL+"/upload/image", ct, body)
			require.NoError(t, err)
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tt.code, resp.StatusCode, string(out))
			if tt.code == 200 {
				assert.JSONEq(t, `{"name": "in.png", "subfolder": "", "type": "input"}`, string(out))
				view, err := http.Get(f.ts.URL + "/api/view?filename=in.png&type=input")
				require.NoError(t, err)
				view.Body.Close()
				assert.Equal(t, 200, view.StatusCode)
			}
		})
	}
}

func TestCloseWithRunningPromptAndSocket(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "cl")
	id := f.submit(t, "cl", "", longSteps)
	f.waitRunning(t, id)
	require.NoError(t, f.srv.Close())
	require.NoError(t, f.srv.Close(), "Close is idempotent")
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.Empty(t, st.Running, "closing ends the GPU job")
	for {
		if _, _, err := c.conn.Read(t.Context()); err != nil {
			break
		}
	}
}
