package fakea1111

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/gpulock/gpulock/internal/fakeimage"
)

// handleExtraSingle answers POST /sdapi/v1/extra-single-image after a
// short job under the queue lock.
func (s *Server) handleExtraSingle(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Image string `json:"image"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if !validImage(req.Image) {
		writeAPIError(w, http.StatusInternalServerError, "HTTPException", "Invalid encoded image", "")
		return
	}
	if _, ok := s.await(w, r, jobSpec{name: "extras", steps: extrasSteps, iterations: 1}); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"html_info": "<p>fake upscale</p>", "image": base64.StdEncoding.EncodeToString(fakeimage.PNG())})
}

// handleExtraBatch answers POST /sdapi/v1/extra-batch-images.
func (s *Server) handleExtraBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ImageList []struct {
			Data string `json:"data"`
			Name string `json:"name"`
		} `json:"imageList"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	for _, im := range req.ImageList {
		if !validImage(im.Data) {
			writeAPIError(w, http.StatusInternalServerError, "HTTPException", "Invalid encoded image", "")
			return
		}
	}
	if _, ok := s.await(w, r, jobSpec{name: "extras", steps: extrasSteps, iterations: 1}); !ok {
		return
	}
	images := make([]string, len(req.ImageList))
	for i := range images {
		images[i] = base64.StdEncoding.EncodeToString(fakeimage.PNG())
	}
	writeJSON(w, http.StatusOK, map[string]any{"html_info": "", "images": images})
}

// handleInterrogate answers POST /sdapi/v1/interrogate with a caption.
func (s *Server) handleInterrogate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Image string `json:"image"`
		Model string `json:"model"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Model != "" && req.Model != "clip" && req.Model != "deepdanbooru" {
		writeAPIError(w, http.StatusNotFound, "HTTPException", "Model not found", "")
		return
	}
	if !validImage(req.Image) {
		writeAPIError(w, http.StatusNotFound, "HTTPException", "Image not found", "")
		return
	}
	if _, ok := s.await(w, r, jobSpec{name: "interrogate", steps: extrasSteps, iterations: 1}); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"caption": "a fake caption of a fake image"})
}

// itoa formats an int.
func itoa(n int) string { return strconv.Itoa(n) }
