package fakecomfy

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPostPromptValidation(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name     string
		path     string
		body     string
		code     int
		errType  string
		nodeErrs []string
	}{
		{name: "missing prompt", path: "/prompt", body: `{}`, code: 400, errType: ErrTypeNoPrompt},
		{name: "missing prompt under api", path: "/api/prompt", body: `{"client_id": "x"}`, code: 400, errType: ErrTypeNoPrompt},
		{name: "no output node", path: "/prompt", body: `{"prompt": {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a"}}}}`,
			code: 400, errType: ErrTypeNoOutputs},
		{name: "unknown class", path: "/prompt", body: `{"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}`, code: 400, errType: ErrTypeInvalidPrompt},
		{name: "missing class_type", path: "/prompt", body: `{"prompt": {"1": {"inputs": {}}}}`, code: 400, errType: ErrTypeInvalidPrompt},
		{name: "missing required input", path: "/prompt", body: `{"prompt": {"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}}`,
			code: 400, errType: ErrTypeOutputsFailed, nodeErrs: []string{"9"}},
		{name: "link to missing node", path: "/prompt", body: `{"prompt": {"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}}}}`,
			code: 400, errType: ErrTypeOutputsFailed, nodeErrs: []string{"9"}},
		{name: "malformed json", path: "/prompt", body: `{"prompt": `, code: 500},
		{name: "valid", path: "/prompt", body: `{"prompt": ` + string(TextToImagePrompt(1, 1)) + `, "prompt_id": "given"}`, code: 200},
		{name: "minimal graph, a lone KSampler", path: "/prompt", body: `{"prompt": {"1": {"class_type": "KSampler", "inputs": {"steps": 2}}}}`, code: 200},
		{name: "lone KSampler without steps", path: "/prompt", body: `{"prompt": {"1": {"class_type": "KSampler", "inputs": {}}}}`,
			code: 400, errType: ErrTypeNoOutputs},
		{name: "valid under api", path: "/api/prompt", body: `{"prompt": ` + string(TextToImagePrompt(1, 2)) + `}`, code: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.post(t, tt.path, tt.body)
			require.Equal(t, tt.code, code, body)
			if tt.code == http.StatusInternalServerError {
				return
			}
			var out struct {
				PromptID   string          `json:"prompt_id"`
				Error      *ErrorDetail    `json:"error"`
				NodeErrors map[string]any  `json:"node_errors"`
				Number     json.RawMessage `json:"number"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &out))
			require.NotNil(t, out.NodeErrors, "node_errors is always present")
			if tt.code == http.StatusOK {
				assert.Nil(t, out.Error)
				assert.NotEmpty(t, out.PromptID)
				assert.NotEmpty(t, out.Number)
				return
			}
			require.NotNil(t, out.Error)
			assert.Equal(t, tt.errType, out.Error.Type)
			assert.NotEmpty(t, out.Error.Message)
			assert.NotNil(t, out.Error.ExtraInfo)
			var ids []string
			for id := range out.NodeErrors {
				ids = append(ids, id)
			}
			assert.ElementsMatch(t, tt.nodeErrs, ids)
		})
	}
	assert.EqualValues(t, 3, f.srv.Counters().Queued, "invalid prompts never enter the queue (3 valid ones)")
}

func TestEnqueueLocalRejectsInvalid(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.srv.EnqueueLocal(PromptRequest{})
	var perr *PromptError
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, ErrTypeNoPrompt, perr.Detail.Type)

	resp, err := f.srv.EnqueueLocal(PromptRequest{Prompt: TextToImagePrompt(1, 1), PromptID: "local"})
	require.NoError(t, err)
	assert.Equal(t, "local", resp.PromptID)
	e := f.waitHistory(t, "local")
	assert.Equal(t, "success", e.Status.StatusStr)
}

// TestMinimalGraphRuns: the fake's one-node shortcut runs as a job.
func TestMinimalGraphRuns(t *testing.T) {
	f := newFixture(t, nil)
	code, body := f.post(t, "/prompt", `{"prompt": {"1": {"class_type": "KSampler", "inputs": {"steps": 2}}}, "prompt_id": "mini"}`)
	require.Equal(t, http.StatusOK, code, body)
	h := f.waitHistory(t, "mini")
	assert.Equal(t, "success", h.Status.StatusStr)
	assert.True(t, h.Status.Completed)
}
