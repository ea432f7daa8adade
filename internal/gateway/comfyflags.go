package gateway

import "encoding/json"

// isFeatureFlags reports whether a client's websocket frame is ComfyUI's
// {"type": "feature_flags", "data": {...}}, which its front end sends
// first on a new socket.
func isFeatureFlags(b []byte) bool {
	var f struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(b, &f) == nil && f.Type == "feature_flags"
}

// featureFlags is the gateway's answer to a client's feature_flags frame,
// as ComfyUI answers with its own server flags. The flags are those true
// of the relay, not of a machine: previews come as the machines send them
// to a socket that declared no flags (the relay's), so without metadata
// (supports_preview_metadata false), and the largest upload is the
// gateway's bound (Config.MaxUpload), which Redis keeps.
func (g *Gateway) featureFlags() []byte {
	b, _ := json.Marshal(map[string]any{"type": "feature_flags", "data": map[string]any{
		"supports_preview_metadata": false,
		"max_upload_size":           g.cfg.MaxUpload,
	}})
	return b
}
