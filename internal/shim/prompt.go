package shim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
)

// preparePrompt readies a ComfyUI POST /prompt body for tracking: it makes
// sure the prompt has an id (ComfyUI takes a given prompt_id as it is) and,
// when the client named no client_id, names the shim's own websocket client
// (client is the client_id the body named, "" if none)
// so that the prompt's events reach the shim. The verdict is notGPUWork
// when the body is JSON with no prompt (ComfyUI refuses it without
// queueing) and unknownWork when the shim cannot read it (NaN, a compressed
// body): then out is body unchanged.
func preparePrompt(body []byte, h http.Header, shimClientID string) (out []byte, promptID, client string, v verdict) {
	m, v := jsonObject(body, h)
	if v != gpuWork {
		return body, "", "", v
	}
	if raw, has := m["prompt"]; !has || string(raw) == "null" {
		return body, "", "", notGPUWork
	}
	if raw, has := m["prompt_id"]; has {
		_ = json.Unmarshal(raw, &promptID)
	}
	if promptID == "" {
		promptID = newUUID()
		m["prompt_id"] = mustJSON(promptID)
	}
	if raw, has := m["client_id"]; has {
		_ = json.Unmarshal(raw, &client)
	}
	if client == "" && shimClientID != "" {
		m["client_id"] = mustJSON(shimClientID)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return body, "", "", unknownWork
	}
	return out, promptID, client, gpuWork
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// newUUID returns a random (version 4) UUID, the form ComfyUI uses for ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
