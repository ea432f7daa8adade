package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
)

// backendGone reports whether resp is a shim's own 502
// upstream_unreachable, which it answers when its backend died or stopped
// answering while the job ran, and returns the shim's message. Only a 502
// JSON answer is read, at most 64 KiB of it, and resp.Body still gives
// the whole body afterwards (the caller closes the original).
func backendGone(resp *http.Response) (string, bool) {
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" {
		return "", false
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil {
		return "", false
	}
	var e struct {
		Error struct {
			Type, Message, Source string
		} `json:"error"`
	}
	if json.Unmarshal(head, &e) != nil || e.Error.Source != "gpulock" || e.Error.Type != "upstream_unreachable" {
		return "", false
	}
	return e.Error.Message, true
}
