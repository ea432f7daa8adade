package gateway

import (
	"encoding/json"
	"slices"
	"strings"
)

// modelInputs are the inputs of ComfyUI loader nodes that name the model
// a prompt loads (CheckpointLoaderSimple, UNETLoader and their kin).
var modelInputs = []string{"ckpt_name", "unet_name"}

// modelOf returns the model a GPU request loads, for model-aware dispatch
// (cluster.Turn.Model): for ComfyUI the ckpt_name and unet_name inputs of
// the prompt's nodes (several loaders: their names sorted, joined by
// "+"); for A1111 override_settings.sd_model_checkpoint. "" when the body
// names none (an A1111 job then runs with the machine's current model, and
// any free GPU is as good) or with PlainDispatch.
func (g *Gateway) modelOf(body []byte) string {
	if g.cfg.PlainDispatch {
		return ""
	}
	if g.cfg.Profile == "a1111" {
		var req struct {
			Override struct {
				Checkpoint string `json:"sd_model_checkpoint"`
			} `json:"override_settings"`
		}
		_ = json.Unmarshal(body, &req)
		return req.Override.Checkpoint
	}
	var req struct {
		Prompt map[string]struct {
			Inputs map[string]json.RawMessage `json:"inputs"`
		} `json:"prompt"`
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	var names []string
	for _, node := range req.Prompt {
		for _, in := range modelInputs {
			var name string
			if raw, ok := node.Inputs[in]; ok && json.Unmarshal(raw, &name) == nil && name != "" {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), "+")
}
