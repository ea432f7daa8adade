package fakea1111

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net/http"
	"testing"

	"github.com/gpulock/gpulock/internal/fakeimage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var b64PNG = base64.StdEncoding.EncodeToString(fakeimage.PNG())

func TestGenerateAndValidation(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name string
		path string
		body string
		code int
		want string // JSON the body must equal, if set
	}{
		{name: "empty txt2img", path: "/sdapi/v1/txt2img", body: `{}`, code: 200},
		{name: "txt2img with fields", path: "/sdapi/v1/txt2img", body: `{"prompt": "fox", "steps": 2, "sampler_name": "Euler", "batch_size": 2}`, code: 200},
		{name: "bad sampler", path: "/sdapi/v1/txt2img", body: `{"sampler_name": "Nope"}`, code: 400,
			want: `{"error": "HTTPException", "detail": "Sampler not found", "body": "", "errors": ""}`},
		{name: "wrong type", path: "/sdapi/v1/txt2img", body: `{"steps": "many"}`, code: 422},
		{name: "malformed", path: "/sdapi/v1/txt2img", body: `{"steps": `, code: 422},
		{name: "img2img without image", path: "/sdapi/v1/img2img", body: `{}`, code: 404},
		{name: "img2img bad image", path: "/sdapi/v1/img2img", body: `{"init_images": ["%%%"]}`, code: 500},
		{name: "img2img", path: "/sdapi/v1/img2img", body: `{"init_images": ["data:image/png;base64,` + b64PNG + `"], "steps": 1}`, code: 200},
		{name: "extras single", path: "/sdapi/v1/extra-single-image", body: `{"image": "` + b64PNG + `"}`, code: 200},
		{name: "extras batch", path: "/sdapi/v1/extra-batch-images", body: `{"imageList": [{"data": "` + b64PNG + `", "name": "a.png"}]}`, code: 200},
		{name: "interrogate", path: "/sdapi/v1/interrogate", body: `{"image": "` + b64PNG + `"}`, code: 200},
		{name: "interrogate bad model", path: "/sdapi/v1/interrogate", body: `{"image": "` + b64PNG + `", "model": "x"}`, code: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.post(t, tt.path, tt.body)
			require.Equal(t, tt.code, code, body)
			if tt.want != "" {
				assert.JSONEq(t, tt.want, body)
			}
			if code == 422 {
				assert.Contains(t, body, `"detail"`)
			}
		})
	}
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 6, st.Jobs, "only valid requests run")
	assert.Zero(t, st.Overlaps)
}

func TestTxt2imgAnswer(t *testing.T) {
	f := newFixture(t, nil)
	code, body := f.post(t, "/sdapi/v1/txt2img", `{"prompt": "a fox", "n_iter": 2}`)
	require.Equal(t, http.StatusOK, code, body)
	var resp GenerateResponse
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Len(t, resp.Images, 2)
	raw, err := base64.StdEncoding.DecodeString(resp.Images[0])
	require.NoError(t, err)
	_, err = png.Decode(bytes.NewReader(raw))
	require.NoError(t, err)
	assert.EqualValues(t, 3, resp.Parameters["steps"], "Config.DefaultSteps")
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(resp.Info), &info), "info is a JSON string")
	assert.Equal(t, "a fox", info["prompt"])

	p := f.progress(t)
	assert.Zero(t, p.State.JobCount)
	assert.Equal(t, "scripts_txt2img", p.State.Job, "idle state keeps the last job")
	assert.Equal(t, 3, p.State.SamplingSteps)
	assert.Equal(t, 1, p.State.JobNo)
	assert.EqualValues(t, 1, f.srv.Counters().Succeeded)
}

func TestRequestsAreSerialized(t *testing.T) {
	f := newFixture(t, nil)
	var chans []<-chan result
	for range 4 {
		chans = append(chans, f.postAsync(t, t.Context(), "/sdapi/v1/txt2img", `{"steps": 3}`))
	}
	chans = append(chans, f.postAsync(t, t.Context(), "/sdapi/v1/interrogate", `{"image": "`+b64PNG+`"}`))
	for _, ch := range chans {
		r := await(t, ch)
		require.Equal(t, http.StatusOK, r.code, r.body)
	}
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.EqualValues(t, 5, st.Jobs)
	assert.Zero(t, st.Overlaps)
}

func TestFIFOLockOrder(t *testing.T) {
	var l fifoLock
	l.lock()
	const n = 5
	order := make(chan int, n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			l.lock()
			order <- i
			l.unlock()
			done <- struct{}{}
		}()
		require.Eventually(t, func() bool { return l.waiting() == i+1 }, waitTimeout, pollTick)
	}
	l.unlock()
	for range n {
		await(t, done)
	}
	close(order)
	var got []int
	for i := range order {
		got = append(got, i)
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4}, got)
}
