package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// Two machines both write ComfyUI_00001_.png: the names the gateway hands
// out (in /history and executed events) carry the machine in their
// subfolder, "gpulock-<base64url of the machine's shim URL>[/<the
// machine's subfolder>]", and /view sends a request for such a name to that
// machine (only if it is a live machine of the cluster) with the machine's
// own subfolder.

// outputPrefix starts the subfolder of every output name the gateway hands
// out.
const outputPrefix = "gpulock-"

// outputSubfolder is the subfolder the gateway hands out for a file that
// the machine at url wrote in sub.
func outputSubfolder(url, sub string) string {
	s := outputPrefix + base64.RawURLEncoding.EncodeToString([]byte(url))
	if sub != "" {
		s += "/" + sub
	}
	return s
}

// machineSubfolder reverses outputSubfolder: ok is false for a subfolder
// the gateway did not hand out; err tells why a handed-out-looking one is
// refused (bad encoding, or a subfolder that would leave the folder).
func machineSubfolder(sub string) (url, orig string, ok bool, err error) {
	rest, ok := strings.CutPrefix(sub, outputPrefix)
	if !ok {
		return "", "", false, nil
	}
	enc, orig, _ := strings.Cut(rest, "/")
	b, derr := base64.RawURLEncoding.DecodeString(enc)
	if derr != nil || len(b) == 0 {
		return "", "", true, errBadOutputName
	}
	if !safeSubfolder(orig) {
		return "", "", true, errBadOutputName
	}
	return string(b), orig, true, nil
}

// errBadOutputName refuses a /view subfolder that looks handed out but is
// not one.
var errBadOutputName = &statusError{code: http.StatusBadRequest}

// safeSubfolder reports whether sub stays inside its folder: no absolute
// path, no "..", no backslash.
func safeSubfolder(sub string) bool {
	if strings.HasPrefix(sub, "/") || strings.Contains(sub, "\\") || strings.ContainsRune(sub, 0) {
		return false
	}
	return !slices.Contains(strings.Split(sub, "/"), "..")
}

// rewriteOutputs renames the files of a ComfyUI outputs object ({node:
// {"images": [{filename, subfolder, type}], ...}}) that the machine at url
// wrote; inputs (type "input") are on every machine and keep their names.
// A value it cannot read is returned as it is.
func rewriteOutputs(outputs json.RawMessage, url string) json.RawMessage {
	var nodes map[string]map[string]json.RawMessage
	if json.Unmarshal(outputs, &nodes) != nil {
		return outputs
	}
	changed := false
	for _, node := range nodes {
		for key, raw := range node {
			if out, ok := rewriteFiles(raw, url); ok {
				node[key] = out
				changed = true
			}
		}
	}
	if !changed {
		return outputs
	}
	b, err := json.Marshal(nodes)
	if err != nil {
		return outputs
	}
	return b
}

// rewriteFiles renames a list of file objects; ok is false when raw is not
// one.
func rewriteFiles(raw json.RawMessage, url string) (json.RawMessage, bool) {
	var files []map[string]json.RawMessage
	if json.Unmarshal(raw, &files) != nil || len(files) == 0 {
		return raw, false
	}
	for _, f := range files {
		if _, ok := f["filename"]; !ok {
			return raw, false
		}
		var typ, sub string
		_ = json.Unmarshal(f["type"], &typ)
		_ = json.Unmarshal(f["subfolder"], &sub)
		if typ == "input" || strings.HasPrefix(sub, outputPrefix) {
			continue
		}
		f["subfolder"], _ = json.Marshal(outputSubfolder(url, sub))
	}
	b, err := json.Marshal(files)
	if err != nil {
		return raw, false
	}
	return b, true
}

// rewriteEntry renames the outputs of a history entry.
func rewriteEntry(entry json.RawMessage, url string) json.RawMessage {
	var e map[string]json.RawMessage
	if json.Unmarshal(entry, &e) != nil || len(e["outputs"]) == 0 {
		return entry
	}
	e["outputs"] = rewriteOutputs(e["outputs"], url)
	b, err := json.Marshal(e)
	if err != nil {
		return entry
	}
	return b
}

// rewriteExecuted renames the outputs of an executed frame's data.output
// ({"images": [...]}); other frames are returned as they are.
func rewriteExecuted(frame []byte, url string) []byte {
	var f map[string]json.RawMessage
	if json.Unmarshal(frame, &f) != nil {
		return frame
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(f["data"], &data) != nil || len(data["output"]) == 0 {
		return frame
	}
	var out map[string]json.RawMessage
	if json.Unmarshal(data["output"], &out) != nil {
		return frame
	}
	for key, raw := range out {
		if b, ok := rewriteFiles(raw, url); ok {
			out[key] = b
		}
	}
	data["output"], _ = json.Marshal(out)
	f["data"], _ = json.Marshal(data)
	b, err := json.Marshal(f)
	if err != nil {
		return frame
	}
	return bytes.TrimSpace(b)
}

// viewMachine answers GET /view of a name the gateway handed out, from the
// machine that wrote it, with the machine's own subfolder; it reports
// false for other names.
func (g *Gateway) viewMachine(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	url, orig, ok, err := machineSubfolder(q.Get("subfolder"))
	if !ok {
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_output_name", "gpulock: the subfolder "+q.Get("subfolder")+" is not one this cluster handed out; use the names /history gives")
		return true
	}
	urls, lerr := g.cfg.Store.LiveURLs(r.Context(), g.cfg.Profile)
	if lerr != nil {
		g.redisDown(w, lerr)
		return true
	}
	if !slices.Contains(urls, url) {
		writeError(w, http.StatusNotFound, "machine_gone", "gpulock: the machine that wrote this file ("+url+") is not in the cluster now; start it again to read its outputs")
		return true
	}
	q.Set("subfolder", orig)
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	g.pass(w, r2, url)
	return true
}
