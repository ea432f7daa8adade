package fakecomfy

import (
	"encoding/json"
	"fmt"
)

// TextToImagePrompt returns a valid API-format prompt graph (checkpoint,
// two text encodings, empty latent, KSampler with steps, VAE decode,
// SaveImage) for tests and demos; seed only changes the graph's text.
func TextToImagePrompt(steps int, seed int64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{
  "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
  "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
  "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
  "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
  "3": {"class_type": "KSampler", "inputs": {"seed": %d, "steps": %d, "cfg": 8, "sampler_name": "euler",
        "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
  "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
  "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}
}`, seed, steps))
}

// LoadImagePrompt is TextToImagePrompt with a LoadImage of image (a name
// that POST /upload/image answered) saved beside the sampled image: a
// machine that has not received the upload refuses the prompt.
func LoadImagePrompt(steps int, seed int64, image string) json.RawMessage {
	var graph map[string]json.RawMessage
	_ = json.Unmarshal(TextToImagePrompt(steps, seed), &graph)
	name, _ := json.Marshal(image)
	graph["10"] = json.RawMessage(`{"class_type": "LoadImage", "inputs": {"image": ` + string(name) + `}}`)
	graph["11"] = json.RawMessage(`{"class_type": "SaveImage", "inputs": {"filename_prefix": "Loaded", "images": ["10", 0]}}`)
	out, _ := json.Marshal(graph)
	return out
}
