package gateway

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/fakecomfy"
)

// TestComfyUploadHasOneNameOnEveryMachine uploads a file whose name one of
// three machines holds already with other bytes (that ComfyUI would
// rename "in (1).png"): the client gets the name it asked for, every
// machine keeps the new bytes under it, and a prompt naming it runs on the
// machine that had the old file.
func TestComfyUploadHasOneNameOnEveryMachine(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	var ms []*comfyMachine
	for i := 1; i <= 3; i++ {
		ms = append(ms, e.startComfyMachine(t, fmt.Sprintf("m%d", i)))
	}
	waitFor(t, "three free GPUs", func() bool { return e.freeCount(t, "comfyui") == 3 })
	old := ms[1]
	code, body := uploadImage(t, old.backend, "/upload/image", "in.png", "", []byte("old bytes"))
	require.Equal(t, http.StatusOK, code, body)

	content := bytes.Repeat([]byte("new"), 1000)
	code, body = uploadImage(t, gw, "/upload/image", "in.png", "", content)
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"name": "in.png", "subfolder": "", "type": "input"}`, body, "the name asked for")
	for _, m := range ms {
		up, ok := m.comfy.Uploaded("in.png")
		require.True(t, ok, m.name)
		assert.Equal(t, sha256.Sum256(content), up.SHA256, "%s keeps the new bytes under the name handed out", m.name)
		_, renamed := m.comfy.Uploaded("in (1).png")
		assert.Equal(t, m == old, renamed, "%s: only the machine with the old file named it otherwise (the test's premise)", m.name)
	}

	for _, m := range ms {
		if m != old {
			release := holdLock(t, m.machine)
			defer release()
		}
	}
	waitFor(t, "only the machine with the old file free", func() bool { return e.freeCount(t, "comfyui") == 1 })
	id, _ := submit(t, gw, fmt.Sprintf(`{"prompt":%s,"client_id":"up"}`, fakecomfy.LoadImagePrompt(2, 0, "in.png")))
	waitFor(t, "the prompt done", func() bool { return historyDone(t, gw, id) })
	assert.True(t, historyDone(t, old.backend, id), "it ran where the old file was")
}

// TestComfyUploadKeptInRedisKeepsItsNameOnAMachineThatJoinsLater makes
// the machine that joins after an upload hold other bytes under its name:
// the kept upload, sent before the prompt, replaces them.
func TestComfyUploadKeptInRedisKeepsItsNameOnAMachineThatJoinsLater(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, nil)
	gw := e.gateways["comfyui"].URL
	first := e.startComfyMachine(t, "m1")
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	content := bytes.Repeat([]byte("new"), 1000)
	code, body := uploadImage(t, gw, "/upload/image", "in.png", "", content)
	require.Equal(t, http.StatusOK, code, body)

	later := e.startComfyMachine(t, "m2")
	code, body = uploadImage(t, later.backend, "/upload/image", "in.png", "", []byte("old bytes"))
	require.Equal(t, http.StatusOK, code, body)
	release := holdLock(t, first.machine)
	defer release()
	waitFor(t, "only the newcomer free", func() bool { return e.freeCount(t, "comfyui") == 1 })
	id, _ := submit(t, gw, fmt.Sprintf(`{"prompt":%s,"client_id":"up"}`, fakecomfy.LoadImagePrompt(2, 0, "in.png")))
	waitFor(t, "the prompt done", func() bool { return historyDone(t, gw, id) })
	require.True(t, historyDone(t, later.backend, id), "the newcomer ran it")
	up, ok := later.comfy.Uploaded("in.png")
	require.True(t, ok)
	assert.Equal(t, sha256.Sum256(content), up.SHA256, "the kept upload replaced the newcomer's own file")
}

// TestComfyKeptUploadsAreBoundedOldestFirst bounds the kept uploads to
// about two files: after a third, the first is no longer kept (a machine
// that joins later does not get it), the two last are.
func TestComfyKeptUploadsAreBoundedOldestFirst(t *testing.T) {
	e := newCluster(t, 0, []string{"comfyui"}, func(c *Config) { c.MaxKeptUploads = 25_000 })
	gw := e.gateways["comfyui"].URL
	e.startComfyMachine(t, "m1")
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	names := []string{"a.png", "b.png", "c.png"}
	for i, n := range names {
		code, body := uploadImage(t, gw, "/upload/image", n, "", bytes.Repeat([]byte{byte(i)}, 10_000))
		require.Equal(t, http.StatusOK, code, body)
	}
	for i, n := range names {
		_, _, found, err := e.store.LoadUpload(t.Context(), cluster.FileKey("input", "", n))
		require.NoError(t, err)
		assert.Equal(t, i > 0, found, "%s kept", n)
	}
}
