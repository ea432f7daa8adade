package fakecomfy

import (
	"slices"
	"strconv"
)

// nodeClass describes one node type of the fake's vocabulary.
type nodeClass struct {
	required []string // required input names
	output   []string // output types
	isOutput bool     // an output node (OUTPUT_NODE)
	category string
}

// The fake's node vocabulary; class types not listed are invalid.
var nodeClasses = map[string]nodeClass{
	"CheckpointLoaderSimple": {required: []string{"ckpt_name"}, output: []string{"MODEL", "CLIP", "VAE"}, category: "loaders"},
	"CLIPTextEncode":         {required: []string{"text", "clip"}, output: []string{"CONDITIONING"}, category: "conditioning"},
	"EmptyLatentImage":       {required: []string{"width", "height", "batch_size"}, output: []string{"LATENT"}, category: "latent"},
	"KSampler": {required: []string{"model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"},
		output: []string{"LATENT"}, category: "sampling"},
	"VAEDecode": {required: []string{"samples", "vae"}, output: []string{"IMAGE"}, category: "latent"},
	"SaveImage": {required: []string{"images", "filename_prefix"}, isOutput: true, category: "image"},
	// LoadImage reads an image that POST /upload/image put in the input
	// folder; a prompt naming one that is not there is refused (ComfyUI's
	// "Invalid image file").
	"LoadImage": {required: []string{"image"}, output: []string{"IMAGE", "MASK"}, category: "image"},
}

// Node is one node of a prompt graph.
type Node struct {
	ClassType string         `json:"class_type"`
	Inputs    map[string]any `json:"inputs"`
}

// link returns the node id an input value links to, if it is a link
// ([node_id, output_index]).
func link(v any) (string, bool) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return "", false
	}
	if _, ok := arr[1].(float64); !ok {
		return "", false
	}
	switch id := arr[0].(type) {
	case string:
		return id, true
	case float64:
		return strconv.FormatFloat(id, 'f', -1, 64), true
	}
	return "", false
}

// sortedIDs returns the graph's node ids in ComfyUI-like order: numeric ids
// by value, then the rest lexically.
func sortedIDs[V any](graph map[string]V) []string {
	ids := make([]string, 0, len(graph))
	for id := range graph {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		na, ea := strconv.Atoi(a)
		nb, eb := strconv.Atoi(b)
		switch {
		case ea == nil && eb == nil:
			return na - nb
		case ea == nil:
			return -1
		case eb == nil:
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return ids
}

// executionOrder returns the nodes the outputs need, each after its inputs.
func executionOrder(graph map[string]Node, outputs []string) []string {
	var order []string
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		node, ok := graph[id]
		if !ok {
			return
		}
		for _, name := range sortedIDs(node.Inputs) {
			if from, ok := link(node.Inputs[name]); ok {
				visit(from)
			}
		}
		order = append(order, id)
	}
	for _, id := range outputs {
		visit(id)
	}
	return order
}

// steps returns a KSampler node's steps input, or 0 if it has none usable.
func (n Node) steps() int {
	f, ok := n.Inputs["steps"].(float64)
	if !ok || f < 1 {
		return 0
	}
	return int(f)
}
