package fakecomfy

import (
	"fmt"
	"strings"
)

// errTypeCustomValidation is ComfyUI's node error type when a node's own
// VALIDATE_INPUTS refuses a value (LoadImage's missing file).
const errTypeCustomValidation = "custom_validation_failed"

// checkImages refuses a prompt whose LoadImage nodes (those the outputs
// need) name a file that was not uploaded here, as ComfyUI answers:
// prompt_outputs_failed_validation with "Invalid image file: X".
func (s *Server) checkImages(graph map[string]Node, outputs []string) error {
	errs := map[string]NodeError{}
	for _, out := range outputs {
		for _, id := range executionOrder(graph, []string{out}) {
			n := graph[id]
			if n.ClassType != "LoadImage" {
				continue
			}
			name, _ := n.Inputs["image"].(string)
			if _, ok := s.Uploaded(strings.TrimSuffix(name, " [input]")); ok {
				continue
			}
			ne := errs[id]
			if ne.Errors == nil {
				ne = NodeError{ClassType: n.ClassType, Errors: []ErrorDetail{{Type: errTypeCustomValidation,
					Message: "Custom validation failed for node", Details: fmt.Sprintf("image - Invalid image file: %s", name),
					ExtraInfo: map[string]any{"input_name": "image"}}}}
			}
			ne.DependentOutputs = append(ne.DependentOutputs, out)
			errs[id] = ne
		}
	}
	if len(errs) == 0 {
		return nil
	}
	e := newPromptError(ErrTypeOutputsFailed, "Prompt outputs failed validation", "")
	e.NodeErrors = errs
	return e
}
