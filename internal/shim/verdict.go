package shim

import (
	"encoding/json"
	"net/http"
	"strings"
)

// verdict is what the shim makes of a request on a GPU route once its body
// is read.
type verdict int

const (
	// gpuWork is a request the shim understood as GPU work.
	gpuWork verdict = iota
	// notGPUWork is a request the shim understood as no GPU work at all
	// (an A1111 /options call that changes no model, a ComfyUI body with
	// no prompt in it): it passes without waiting.
	notGPUWork
	// unknownWork is a request the shim cannot read (JSON that Go rejects
	// but Python accepts, such as NaN; a compressed body). It is treated
	// as GPU work that holds the GPU until the backend is idle: fail closed.
	unknownWork
)

// String names the verdict, for logs.
func (v verdict) String() string {
	switch v {
	case gpuWork:
		return "gpu"
	case notGPUWork:
		return "not_gpu"
	}
	return "unknown"
}

// opaqueBody reports whether the body is encoded in a way the shim does not
// decode (any Content-Encoding but identity): the backend may inflate it.
func opaqueBody(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return true
			}
		}
	}
	return false
}

// jsonObject decodes body as a JSON object. It returns notGPUWork when the
// body is valid JSON but no object (the backend refuses it as Python's json
// reads it the same way), unknownWork when Go cannot read it.
func jsonObject(body []byte, h http.Header) (map[string]json.RawMessage, verdict) {
	if opaqueBody(h) {
		return nil, unknownWork
	}
	var m map[string]json.RawMessage
	// No trimming: JSON's whitespace is only space, tab, CR and LF, and
	// Python's json refuses the rest (a form feed, say) as ComfyUI would.
	if err := json.Unmarshal(body, &m); err != nil {
		if json.Valid(body) {
			return nil, notGPUWork // an array, a string, a number
		}
		return nil, unknownWork
	}
	if m == nil {
		return nil, notGPUWork // null
	}
	return m, gpuWork
}

// modelKeys are the A1111 options whose change loads weights onto the GPU.
var modelKeys = []string{"sd_model_checkpoint", "sd_vae", "sd_unet"}

// changesModel judges an A1111 /options body: GPU work when it sets a model
// option, unknown when the shim cannot read it.
func changesModel(body []byte, h http.Header) verdict {
	opts, v := jsonObject(body, h)
	if v != gpuWork {
		return v
	}
	for _, k := range modelKeys {
		if _, ok := opts[k]; ok {
			return gpuWork
		}
	}
	return notGPUWork
}
