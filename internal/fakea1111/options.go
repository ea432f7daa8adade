package fakea1111

import (
	"net/http"

	"github.com/gpulock/gpulock/internal/simgpu"
)

// SDModel is one entry of GET /sdapi/v1/sd-models.
type SDModel struct {
	Title     string  `json:"title"`
	ModelName string  `json:"model_name"`
	Hash      string  `json:"hash"`
	SHA256    string  `json:"sha256"`
	Filename  string  `json:"filename"`
	Config    *string `json:"config"`
}

// sdModels lists the fake's checkpoints; the first is loaded at start.
var sdModels = []SDModel{
	{Title: "v1-5-pruned-emaonly.safetensors [6ce0161689]", ModelName: "v1-5-pruned-emaonly", Hash: "6ce0161689",
		SHA256: "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa", Filename: "/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors"},
	{Title: "sd_xl_base_1.0.safetensors [31e35c80fc]", ModelName: "sd_xl_base_1.0", Hash: "31e35c80fc",
		SHA256: "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6ffb75e2b9a1b", Filename: "/models/Stable-diffusion/sd_xl_base_1.0.safetensors"},
}

// samplerNames lists the samplers (and aliases) the fake accepts.
var samplerNames = []string{
	"DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2S a", "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a",
	"DPM fast", "DPM adaptive", "Restart", "DDIM", "PLMS", "UniPC", "LCM",
	"k_euler_a", "k_euler", "k_lms", "k_heun", "k_dpm_2", "k_dpmpp_2m", "ddim", "plms", "unipc",
}

// handleSDModels answers GET /sdapi/v1/sd-models.
func (s *Server) handleSDModels(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, sdModels)
}

// handleSamplers answers GET /sdapi/v1/samplers.
func (s *Server) handleSamplers(w http.ResponseWriter, _ *http.Request) {
	out := make([]map[string]any, 0, 17)
	for _, n := range samplerNames[:17] {
		out = append(out, map[string]any{"name": n, "aliases": []string{}, "options": map[string]any{}})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleGetOptions answers GET /sdapi/v1/options.
func (s *Server) handleGetOptions(w http.ResponseWriter, _ *http.Request) {
	out := map[string]any{"sd_vae": "Automatic", "samples_format": "png", "sd_checkpoint_hash": "", "CLIP_stop_at_last_layers": 1}
	s.mu.Lock()
	for k, v := range s.options {
		out[k] = v
	}
	out["sd_model_checkpoint"] = s.checkpoint
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// handlePostOptions answers POST /sdapi/v1/options with null; the other
// options it keeps, and GET shows them. A change of
// sd_model_checkpoint loads the model inside the queue lock, with
// state.job_count -1 for ModelLoadDuration, before the answer.
func (s *Server) handlePostOptions(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	for k, v := range req {
		if k != "sd_model_checkpoint" {
			if s.options == nil {
				s.options = map[string]any{}
			}
			s.options[k] = v
		}
	}
	s.mu.Unlock()
	if v, ok := req["sd_model_checkpoint"]; ok {
		name, _ := v.(string)
		model, found := findModel(name)
		if !found {
			writeAPIError(w, http.StatusInternalServerError, "RuntimeError", "", "model "+name+" not found")
			return
		}
		s.mu.Lock()
		same := s.checkpoint == model.Title
		s.mu.Unlock()
		if !same {
			ch, err := s.startLoad(model.Title)
			if err != nil {
				writeAPIError(w, http.StatusServiceUnavailable, "RuntimeError", "", err.Error())
				return
			}
			select {
			case aerr := <-ch:
				if aerr != nil {
					writeJSON(w, http.StatusInternalServerError, aerr)
					return
				}
			case <-r.Context().Done():
				s.mu.Lock()
				s.counters.Abandoned++
				s.mu.Unlock()
				return
			}
		}
	}
	writeJSON(w, http.StatusOK, nil)
}

// findModel finds a checkpoint by title, name or file name.
func findModel(name string) (SDModel, bool) {
	for _, m := range sdModels {
		if name == m.Title || name == m.ModelName || name == m.ModelName+".safetensors" || name == m.Hash {
			return m, true
		}
	}
	return SDModel{}, false
}

// startLoad loads checkpoint title in a job goroutine holding the queue
// lock, with job_count -1 meanwhile; the channel gets nil or the error.
func (s *Server) startLoad(title string) (<-chan *apiError, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.jobs.Add(1)
	s.mu.Unlock()
	ch := make(chan *apiError, 1)
	go func() {
		defer s.jobs.Done()
		s.queue.lock()
		defer s.queue.unlock()
		s.mu.Lock()
		prev := s.state.JobCount
		s.state.JobCount = -1
		s.mu.Unlock()
		err := s.load(true)
		s.mu.Lock()
		s.state.JobCount = prev
		if err == nil {
			s.checkpoint = title
		}
		s.mu.Unlock()
		ch <- err
	}()
	return ch, nil
}

// simgpuMessage returns the CUDA text of a simgpu error.
func simgpuMessage(err error) string { return simgpu.CUDAMessage(err) }
