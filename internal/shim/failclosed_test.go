package shim

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A GPU request whose body the shim cannot read waits in line like GPU
// work: nothing is forwarded while another service holds the GPU.
func TestUnreadableGPUBodiesWaitInLine(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte(`{"prompt":{"1":{"class_type":"X","inputs":{}}}}`))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	cases := []struct {
		name, profile, path, encoding string
		body                          []byte
	}{
		{"comfyui NaN prompt", "comfyui", "/prompt", "", []byte(`{"prompt": {"1": {"class_type": "X", "inputs": {"cfg": NaN}}}}`)},
		{"comfyui Infinity prompt", "comfyui", "/api/prompt", "", []byte(`{"prompt": {"1": {"inputs": {"cfg": -Infinity}}}}`)},
		{"comfyui gzip prompt", "comfyui", "/prompt", "gzip", gz.Bytes()},
		{"a1111 NaN model switch", "a1111", "/sdapi/v1/options", "", []byte(`{"sd_model_checkpoint": "b.safetensors", "x": NaN}`)},
		{"a1111 gzip options", "a1111", "/sdapi/v1/options", "br", []byte("\x1b\x00\x00")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			backend, forwarded := countingBackend(t)
			s, front := startShim(t, t.TempDir(), tc.profile, backend.URL)
			release := holdGPU(t, s) // another service holds the GPU
			answered := make(chan int, 1)
			go func() {
				req, err := http.NewRequest(http.MethodPost, front.URL+tc.path, bytes.NewReader(tc.body))
				if err != nil {
					answered <- 0
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if tc.encoding != "" {
					req.Header.Set("Content-Encoding", tc.encoding)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					answered <- 0
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered <- resp.StatusCode
			}()
			waitFor(t, "the request to wait in line", func() bool { return s.line.len() == 1 })
			assert.Zero(t, forwarded.Load(), "nothing goes around the line")
			release()
			assert.Equal(t, http.StatusOK, <-answered)
			assert.Equal(t, int64(1), forwarded.Load(), "forwarded once the GPU was free")
			waitFor(t, "the shim to release the GPU once the backend is idle", func() bool {
				h, err := s.Lock().TryAcquire()
				if err != nil {
					return false
				}
				return h.Release() == nil
			})
		})
	}
}

// A body the shim reads as no GPU work still passes without waiting.
func TestReadableNonGPUBodiesPassWhileTheGPUIsHeld(t *testing.T) {
	backend, forwarded := countingBackend(t)
	s, front := startShim(t, t.TempDir(), "a1111", backend.URL)
	release := holdGPU(t, s)
	defer release()
	resp, _ := postJSON(t, front.URL+"/sdapi/v1/options", `{"CLIP_stop_at_last_layers": 2, "x": 1, "x": 2}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), forwarded.Load())
}
