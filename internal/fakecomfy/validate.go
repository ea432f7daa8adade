package fakecomfy

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error types of POST /prompt validation failures, as ComfyUI names them.
const (
	ErrTypeNoPrompt        = "no_prompt"
	ErrTypeInvalidPrompt   = "invalid_prompt"
	ErrTypeNoOutputs       = "prompt_no_outputs"
	ErrTypeOutputsFailed   = "prompt_outputs_failed_validation"
	errTypeRequiredMissing = "required_input_missing"
	errTypeBadValue        = "value_not_valid"
)

// ErrorDetail is one error in ComfyUI's error shape.
type ErrorDetail struct {
	Type      string         `json:"type"`
	Message   string         `json:"message"`
	Details   string         `json:"details"`
	ExtraInfo map[string]any `json:"extra_info"`
}

// NodeError lists the validation errors of one node.
type NodeError struct {
	Errors           []ErrorDetail `json:"errors"`
	DependentOutputs []string      `json:"dependent_outputs"`
	ClassType        string        `json:"class_type"`
}

// PromptError is a rejected prompt: POST /prompt answers Status with
// {"error": ..., "node_errors": ...}. Rejected prompts never enter the queue.
type PromptError struct {
	Status     int
	Detail     ErrorDetail
	NodeErrors map[string]NodeError
}

// Error returns the error's type and message.
func (e *PromptError) Error() string {
	return fmt.Sprintf("fakecomfy: %s: %s", e.Detail.Type, e.Detail.Message)
}

// body returns the JSON body POST /prompt answers with.
func (e *PromptError) body() map[string]any {
	ne := e.NodeErrors
	if ne == nil {
		ne = map[string]NodeError{}
	}
	return map[string]any{"error": e.Detail, "node_errors": ne}
}

// newPromptError returns a 400 PromptError without node errors.
func newPromptError(typ, msg, details string) *PromptError {
	return &PromptError{Status: http.StatusBadRequest, Detail: ErrorDetail{
		Type: typ, Message: msg, Details: details, ExtraInfo: map[string]any{},
	}}
}

// validatePrompt parses and checks a prompt graph and returns it with its
// output node ids.
func validatePrompt(raw json.RawMessage) (map[string]Node, []string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, newPromptError(ErrTypeNoPrompt, "No prompt provided", "No prompt provided")
	}
	var rawNodes map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rawNodes); err != nil {
		return nil, nil, newPromptError(ErrTypeInvalidPrompt, "Prompt is not an object", err.Error())
	}
	graph := make(map[string]Node, len(rawNodes))
	for _, id := range sortedIDs(rawNodes) {
		var n Node
		if err := json.Unmarshal(rawNodes[id], &n); err != nil || n.ClassType == "" {
			return nil, nil, newPromptError(ErrTypeInvalidPrompt,
				"Cannot execute because a node is missing the class_type property.", fmt.Sprintf("Node ID '#%s'", id))
		}
		if _, ok := nodeClasses[n.ClassType]; !ok {
			return nil, nil, newPromptError(ErrTypeInvalidPrompt,
				fmt.Sprintf("Cannot execute because node %s does not exist.", n.ClassType), fmt.Sprintf("Node ID '#%s'", id))
		}
		graph[id] = n
	}
	var outputs []string
	for _, id := range sortedIDs(graph) {
		if nodeClasses[graph[id].ClassType].isOutput {
			outputs = append(outputs, id)
		}
	}
	if len(outputs) == 0 {
		if id, ok := minimalGraph(graph); ok {
			return graph, []string{id}, nil
		}
		return nil, nil, newPromptError(ErrTypeNoOutputs, "Prompt has no outputs", "")
	}
	if nodeErrors := validateInputs(graph, outputs); len(nodeErrors) > 0 {
		e := newPromptError(ErrTypeOutputsFailed, "Prompt outputs failed validation", "")
		e.NodeErrors = nodeErrors
		return nil, nil, e
	}
	return graph, outputs, nil
}

// validateInputs checks the required inputs of every node the outputs need.
func validateInputs(graph map[string]Node, outputs []string) map[string]NodeError {
	errs := map[string]NodeError{}
	for _, out := range outputs {
		for _, id := range executionOrder(graph, []string{out}) {
			n := graph[id]
			var list []ErrorDetail
			for _, name := range nodeClasses[n.ClassType].required {
				v, ok := n.Inputs[name]
				if !ok {
					list = append(list, ErrorDetail{Type: errTypeRequiredMissing, Message: "Required input is missing",
						Details: name, ExtraInfo: map[string]any{"input_name": name}})
					continue
				}
				if from, isLink := link(v); isLink {
					if _, exists := graph[from]; !exists {
						list = append(list, ErrorDetail{Type: errTypeBadValue, Message: "Linked node does not exist",
							Details: fmt.Sprintf("%s: node %s", name, from), ExtraInfo: map[string]any{"input_name": name}})
					}
				}
			}
			if n.ClassType == "KSampler" && n.steps() == 0 {
				if _, isLink := link(n.Inputs["steps"]); !isLink && n.Inputs["steps"] != nil {
					list = append(list, ErrorDetail{Type: errTypeBadValue, Message: "Value not valid",
						Details: "steps must be an integer >= 1", ExtraInfo: map[string]any{"input_name": "steps"}})
				}
			}
			if len(list) == 0 {
				continue
			}
			ne := errs[id]
			if ne.Errors == nil {
				ne = NodeError{Errors: list, ClassType: n.ClassType}
			}
			ne.DependentOutputs = append(ne.DependentOutputs, out)
			errs[id] = ne
		}
	}
	return errs
}

// minimalGraph reports whether graph is the fake's shortcut for trying a
// shim by hand, which real ComfyUI refuses: one KSampler node whose only
// input that matters is steps, {"1": {"class_type": "KSampler", "inputs":
// {"steps": 5}}}. It runs as a job of that many steps with no images.
func minimalGraph(graph map[string]Node) (string, bool) {
	if len(graph) != 1 {
		return "", false
	}
	for id, n := range graph {
		if n.ClassType == "KSampler" && n.steps() > 0 {
			return id, true
		}
	}
	return "", false
}
