package shim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
)

// preparePrompt readies a ComfyUI POST /prompt body for tracking: it makes
// sure the prompt has an id (ComfyUI takes a given prompt_id as it is) and,
// when the client named no client_id, names the shim's own websocket client
// so that the prompt's events reach the shim. ok is false when the body is
// not a JSON object with a prompt: ComfyUI refuses those without queueing.
func preparePrompt(body []byte, shimClientID string) (out []byte, promptID string, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return body, "", false
	}
	if raw, has := m["prompt"]; !has || string(raw) == "null" {
		return body, "", false
	}
	if raw, has := m["prompt_id"]; has {
		_ = json.Unmarshal(raw, &promptID)
	}
	if promptID == "" {
		promptID = newUUID()
		m["prompt_id"] = mustJSON(promptID)
	}
	var client string
	if raw, has := m["client_id"]; has {
		_ = json.Unmarshal(raw, &client)
	}
	if client == "" && shimClientID != "" {
		m["client_id"] = mustJSON(shimClientID)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return body, "", false
	}
	return out, promptID, true
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
