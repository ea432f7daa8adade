package fakea1111

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/gpulock/gpulock/internal/fakeimage"
)

// GenerateRequest is the body of txt2img and img2img; every field is
// optional.
type GenerateRequest struct {
	Prompt            string         `json:"prompt"`
	NegativePrompt    string         `json:"negative_prompt"`
	Steps             *int           `json:"steps"`
	SamplerName       string         `json:"sampler_name"`
	SamplerIndex      string         `json:"sampler_index"`
	Scheduler         string         `json:"scheduler"`
	Width             *int           `json:"width"`
	Height            *int           `json:"height"`
	Seed              *int64         `json:"seed"`
	BatchSize         *int           `json:"batch_size"`
	NIter             *int           `json:"n_iter"`
	CfgScale          *float64       `json:"cfg_scale"`
	DenoisingStrength *float64       `json:"denoising_strength"`
	InitImages        []string       `json:"init_images"`
	OverrideSettings  map[string]any `json:"override_settings"`
	SendImages        *bool          `json:"send_images"`
	SaveImages        *bool          `json:"save_images"`
	// ForceTaskID names the job (A1111 1.6+); the fake uses it as the job's
	// id on the simulated GPU, so tests can follow one job.
	ForceTaskID string `json:"force_task_id"`
}

// GenerateResponse is the 200 answer of txt2img and img2img.
type GenerateResponse struct {
	Images     []string       `json:"images"`
	Parameters map[string]any `json:"parameters"`
	Info       string         `json:"info"`
}

// intOr returns *p, or def if p is nil.
func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// handleGenerate answers txt2img (img false) or img2img: it validates,
// runs the job under the queue lock and answers when the images exist.
func (s *Server) handleGenerate(job string, img bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req GenerateRequest
		if !decodeBody(w, r, &req) {
			return
		}
		sampler := req.SamplerName
		if sampler == "" {
			sampler = req.SamplerIndex
		}
		if sampler == "" {
			sampler = "Euler a"
		}
		if !slices.Contains(samplerNames, sampler) {
			writeAPIError(w, http.StatusBadRequest, "HTTPException", "Sampler not found", "")
			return
		}
		if img {
			if len(req.InitImages) == 0 {
				writeAPIError(w, http.StatusNotFound, "HTTPException", "Init image not found", "")
				return
			}
			for _, im := range req.InitImages {
				if !validImage(im) {
					writeAPIError(w, http.StatusInternalServerError, "HTTPException", "Invalid encoded image", "")
					return
				}
			}
		}
		steps := max(intOr(req.Steps, s.cfg.DefaultSteps), 1)
		batch, iters := max(intOr(req.BatchSize, 1), 1), max(intOr(req.NIter, 1), 1)
		res, ok := s.await(w, r, jobSpec{name: job, steps: steps, iterations: iters, usesModel: true, taskID: req.ForceTaskID,
			checkpoint: overrideCheckpoint(req.OverrideSettings)})
		if !ok {
			return
		}
		params := map[string]any{}
		raw, _ := json.Marshal(req)
		_ = json.Unmarshal(raw, &params)
		params["steps"], params["sampler_name"], params["batch_size"], params["n_iter"] = steps, sampler, batch, iters
		params["width"], params["height"] = intOr(req.Width, 512), intOr(req.Height, 512)
		s.mu.Lock()
		info := map[string]any{
			"prompt": req.Prompt, "all_prompts": []string{req.Prompt}, "negative_prompt": req.NegativePrompt,
			"steps": steps, "sampler_name": sampler, "width": params["width"], "height": params["height"],
			"sd_model_name": s.checkpoint, "job_timestamp": s.state.JobTimestamp, "interrupted": res.interrupted,
			"infotexts": []string{req.Prompt + "\nSteps: " + itoa(steps) + ", Sampler: " + sampler},
		}
		s.mu.Unlock()
		infoJSON, _ := json.Marshal(info)
		images := make([]string, batch*iters)
		for i := range images {
			images[i] = base64.StdEncoding.EncodeToString(fakeimage.PNG())
		}
		writeJSON(w, http.StatusOK, GenerateResponse{Images: images, Parameters: params, Info: string(infoJSON)})
	}
}

// validImage reports whether s is base64 image data, with or without a
// data: URL prefix.
func validImage(s string) bool {
	if i := strings.Index(s, ";base64,"); strings.HasPrefix(s, "data:") && i >= 0 {
		s = s[i+len(";base64,"):]
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) > 0
}

// overrideCheckpoint returns the title of the checkpoint a request's
// override_settings.sd_model_checkpoint names ("" for none or an unknown
// one). The job loads it if another is loaded (ModelLoadDuration) and it
// stays loaded afterwards, as with A1111's
// override_settings_restore_afterwards off.
func overrideCheckpoint(o map[string]any) string {
	name, _ := o["sd_model_checkpoint"].(string)
	if m, ok := findModel(name); ok {
		return m.Title
	}
	return ""
}
