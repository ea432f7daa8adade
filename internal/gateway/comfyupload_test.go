package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// uploadImage posts content as ComfyUI's front end uploads an image, and
// returns the status and body.
func uploadImage(t *testing.T, gw, route, name, subfolder string, content []byte) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("image", name)
	require.NoError(t, err)
	_, err = fw.Write(content)
	require.NoError(t, err)
	require.NoError(t, mw.WriteField("subfolder", subfolder))
	require.NoError(t, mw.WriteField("type", "input"))
	require.NoError(t, mw.Close())
	resp, err := http.Post(gw+route, mw.FormDataContentType(), &buf)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestComfyUploadIsThereOnTheMachineThatRunsThePromptLater(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	first := e.startComfyMachine(t, "m1")
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	content := bytes.Repeat([]byte("pixels"), 5000)
	code, body := uploadImage(t, gw, "/upload/image", "in.png", "sub", content)
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"name": "in.png", "subfolder": "sub", "type": "input"}`, body, "ComfyUI's answer")
	up, ok := first.comfy.Uploaded("sub/in.png")
	require.True(t, ok, "the live machine got the upload at once")
	assert.Equal(t, sha256.Sum256(content), up.SHA256)

	later := e.startComfyMachine(t, "m2") // joins after the upload
	_, ok = later.comfy.Uploaded("sub/in.png")
	require.False(t, ok)
	release := holdLock(t, first.machine) // the prompt must run on the newcomer
	defer release()
	waitFor(t, "only the newcomer free", func() bool { return e.freeCount(t, "comfyui") == 1 })
	id, _ := submit(t, gw, fmt.Sprintf(`{"prompt":%s,"client_id":"up"}`, fakecomfy.LoadImagePrompt(2, 0, "sub/in.png")))
	waitFor(t, "the prompt done", func() bool { return historyDone(t, gw, id) })
	var entry struct {
		Status struct {
			StatusStr string `json:"status_str"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal(history(t, gw, id)[id], &entry))
	assert.Equal(t, "success", entry.Status.StatusStr, "the newcomer had the file before the prompt")
	assert.True(t, historyDone(t, later.backend, id), "the newcomer ran it")
	up, ok = later.comfy.Uploaded("sub/in.png")
	require.True(t, ok)
	assert.Equal(t, sha256.Sum256(content), up.SHA256, "the same bytes")
}

func TestComfyUploadRefusals(t *testing.T) {
	const bound = 64 << 10
	e := newCluster(t, 0, []string{"comfyui"}, func(c *Config) { c.MaxUpload = bound })
	gw := e.gateways["comfyui"].URL
	code, body := uploadImage(t, gw, "/upload/image", "in.png", "", []byte("x"))
	assert.Equal(t, http.StatusServiceUnavailable, code, "no machine: %s", body)
	e.startComfyMachine(t, "m1")
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	tests := []struct {
		name, sub string
		size      int
		code      int
		want      string
	}{
		{"a subfolder that leaves the folder", "../etc", 10, http.StatusBadRequest, "leaves the folder"},
		{"an absolute subfolder", "/etc", 10, http.StatusBadRequest, "leaves the folder"},
		{"over the bound", "", bound, http.StatusRequestEntityTooLarge, "limited to 65536 bytes"},
		{"a mask", "masks", 10, http.StatusOK, `"masks"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := "/upload/image"
			if tt.name == "a mask" {
				route = "/api/upload/mask"
			}
			code, body := uploadImage(t, gw, route, "in.png", tt.sub, make([]byte, tt.size))
			assert.Equal(t, tt.code, code, body)
			assert.Contains(t, body, tt.want)
		})
	}
}

func TestComfyViewOfAnUploadWorksOnAMachineThatJoinedLater(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	e.startComfyMachine(t, "m1")
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	code, body := uploadImage(t, gw, "/upload/image", "in.png", "", []byte("pixels"))
	require.Equal(t, http.StatusOK, code, body)
	later := e.startComfyMachine(t, "m2")
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })
	has := false
	for i := 0; i < 64 && !has; i++ { // either machine answers; the newcomer soon
		code, _, body := get(t, gw+"/view?filename=in.png&subfolder=&type=input")
		require.Equal(t, http.StatusOK, code, body)
		_, has = later.comfy.Uploaded("in.png")
	}
	assert.True(t, has, "the newcomer got the upload when it was asked for it")
}

func TestComfyPromptNamingAFileNoMachineHasEndsWithAnErrorOnItsSocket(t *testing.T) {
	e := newCluster(t, 1, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	const client = "nofile"
	ws := dialWS(t, gw, client)
	require.Equal(t, "status", ws.next().Type)
	id, _ := submit(t, gw, fmt.Sprintf(`{"prompt":%s,"client_id":%q}`, fakecomfy.LoadImagePrompt(2, 0, "never.png"), client))
	var failure map[string]any
	for f := ws.next(); !f.done() || f.promptID() != id; f = ws.next() {
		if f.Type == "execution_error" {
			failure = f.Data
		}
	}
	require.NotNil(t, failure, "the client hears that its prompt failed")
	assert.Equal(t, id, failure["prompt_id"])
	assert.Contains(t, failure["exception_message"], "Invalid image file: never.png", "with the machine's reason")
	var entry struct {
		Status struct {
			StatusStr string `json:"status_str"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal(history(t, gw, id)[id], &entry))
	assert.Equal(t, "error", entry.Status.StatusStr)
}

func TestComfyMaskUploadSendsItsOriginalToAMachineThatLacksIt(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	e.startComfyMachine(t, "m1")
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	code, body := uploadImage(t, gw, "/upload/image", "orig.png", "", []byte("original"))
	require.Equal(t, http.StatusOK, code, body)
	later := e.startComfyMachine(t, "m2")
	waitFor(t, "two free GPUs", func() bool { return e.freeCount(t, "comfyui") == 2 })

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("image", "mask.png")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("mask"))
	require.NoError(t, mw.WriteField("type", "input"))
	require.NoError(t, mw.WriteField("original_ref", `{"filename": "orig.png", "subfolder": "", "type": "input"}`))
	require.NoError(t, mw.Close())
	resp, err := http.Post(gw+"/upload/mask", mw.FormDataContentType(), &buf)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	orig, ok := later.comfy.Uploaded("orig.png")
	require.True(t, ok, "the newcomer got the mask's original before the mask")
	assert.Equal(t, sha256.Sum256([]byte("original")), orig.SHA256)
	_, ok = later.comfy.Uploaded("mask.png")
	assert.True(t, ok)
}
