package gateway

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
)

// promptID makes sure a ComfyUI POST /prompt body names its prompt_id
// (ComfyUI takes a given one as it is), so that the gateway knows where
// /history/{id} lives. A body that names one, or that it cannot read (then
// with ""), is returned unchanged.
func promptID(body []byte) ([]byte, string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return body, ""
	}
	var id string
	if raw, ok := m["prompt_id"]; ok {
		_ = json.Unmarshal(raw, &id)
	}
	if id != "" {
		return body, id // sent as the client sent it
	}
	id = newUUID()
	raw, _ := json.Marshal(id)
	m["prompt_id"] = raw
	out, err := json.Marshal(m)
	if err != nil {
		return body, ""
	}
	return out, id
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func newJobID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b[:])
}
