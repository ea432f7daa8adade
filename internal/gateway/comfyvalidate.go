package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// How long the machines' /object_info is kept, and how old it must be to
// be read again when a prompt names a class it lacks.
const (
	objectInfoTTL     = time.Minute
	objectInfoRefresh = 5 * time.Second
)

// nodeClass is what validation needs of one /object_info class.
type nodeClass struct {
	Input struct {
		Required map[string]json.RawMessage `json:"required"`
	} `json:"input"`
	OutputNode bool `json:"output_node"`
}

// objectInfo caches the union of the live machines' /object_info.
type objectInfo struct {
	mu      sync.Mutex
	classes map[string]nodeClass
	at      time.Time
}

// classes returns the node classes the live machines know, read again when
// older than objectInfoTTL (or than objectInfoRefresh with stale set); nil
// when no machine answered (then prompts are not checked here).
func (g *Gateway) classes(ctx context.Context, stale bool) map[string]nodeClass {
	oi := &g.objInfo
	oi.mu.Lock()
	defer oi.mu.Unlock()
	age := time.Since(oi.at)
	if oi.classes != nil && age < objectInfoTTL && (!stale || age < objectInfoRefresh) {
		return oi.classes
	}
	lctx, cancel := context.WithTimeout(ctx, redisBound/3) // with Enqueue, within 2 s
	urls, err := g.cfg.Store.LiveURLs(lctx, g.cfg.Profile)
	cancel()
	if err != nil {
		return oi.classes
	}
	union := map[string]nodeClass{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Go(func() {
			var m map[string]nodeClass
			if g.getJSON(ctx, u+"/object_info", &m) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range m {
				union[k] = v
			}
		})
	}
	wg.Wait()
	if len(union) == 0 {
		return oi.classes
	}
	oi.classes, oi.at = union, time.Now()
	return union
}

// promptError is ComfyUI's 400 answer to a prompt it refuses.
type promptError struct {
	Error      errorDetail    `json:"error"`
	NodeErrors map[string]any `json:"node_errors"`
}

type errorDetail struct {
	Type      string         `json:"type"`
	Message   string         `json:"message"`
	Details   string         `json:"details"`
	ExtraInfo map[string]any `json:"extra_info"`
}

func refusal(typ, msg, details string) *promptError {
	return &promptError{Error: errorDetail{Type: typ, Message: msg, Details: details, ExtraInfo: map[string]any{}}, NodeErrors: map[string]any{}}
}

// checkPrompt checks a POST /prompt body against the machines' node
// classes as ComfyUI does before it queues: no prompt, a node without or
// with an unknown class_type, no output node, a required input missing.
// It returns nil when the prompt passes or cannot be checked here.
func (g *Gateway) checkPrompt(ctx context.Context, body []byte) *promptError {
	var doc struct {
		Prompt json.RawMessage `json:"prompt"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return nil // the machine answers as ComfyUI would
	}
	if len(doc.Prompt) == 0 || string(doc.Prompt) == "null" {
		return refusal("no_prompt", "No prompt provided", "No prompt provided")
	}
	var nodes map[string]struct {
		ClassType string                     `json:"class_type"`
		Inputs    map[string]json.RawMessage `json:"inputs"`
	}
	if json.Unmarshal(doc.Prompt, &nodes) != nil {
		return nil
	}
	classes := g.classes(ctx, false)
	if classes == nil {
		return nil
	}
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		n := nodes[id]
		if n.ClassType == "" {
			return refusal("invalid_prompt", "Cannot execute because a node is missing the class_type property.", fmt.Sprintf("Node ID '#%s'", id))
		}
		if _, ok := classes[n.ClassType]; !ok {
			if classes = g.classes(ctx, true); classes != nil {
				if _, ok := classes[n.ClassType]; ok {
					continue
				}
			}
			return refusal("invalid_prompt", fmt.Sprintf("Cannot execute because node %s does not exist.", n.ClassType), fmt.Sprintf("Node ID '#%s'", id))
		}
	}
	var outputs []string
	for _, id := range ids {
		if classes[nodes[id].ClassType].OutputNode {
			outputs = append(outputs, id)
		}
	}
	if len(outputs) == 0 {
		return refusal("prompt_no_outputs", "Prompt has no outputs", "")
	}
	nodeErrors := map[string]any{}
	for _, id := range ids {
		n := nodes[id]
		var errs []errorDetail
		req := classes[n.ClassType].Input.Required
		names := make([]string, 0, len(req))
		for name := range req {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if _, ok := n.Inputs[name]; !ok {
				errs = append(errs, errorDetail{Type: "required_input_missing", Message: "Required input is missing",
					Details: name, ExtraInfo: map[string]any{"input_name": name}})
			}
		}
		if len(errs) > 0 {
			nodeErrors[id] = map[string]any{"errors": errs, "dependent_outputs": outputs, "class_type": n.ClassType}
		}
	}
	if len(nodeErrors) > 0 {
		e := refusal("prompt_outputs_failed_validation", "Prompt outputs failed validation", "")
		e.NodeErrors = nodeErrors
		return e
	}
	return nil
}

// writePromptError answers a refused prompt with ComfyUI's 400.
func writePromptError(w http.ResponseWriter, e *promptError) {
	writeJSON(w, http.StatusBadRequest, e)
}
