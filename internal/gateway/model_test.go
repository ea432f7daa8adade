package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestModelOfReadsLoadersAndOverrideSettings(t *testing.T) {
	comfy := &Gateway{cfg: Config{Profile: "comfyui"}}
	assert.Equal(t, "x.safetensors", comfy.modelOf([]byte(modelPrompt(1, 1, "c", "x.safetensors"))))
	two := `{"prompt":{"1":{"class_type":"UNETLoader","inputs":{"unet_name":"flux.safetensors"}},
		"2":{"class_type":"CheckpointLoaderSimple","inputs":{"ckpt_name":"b.ckpt"}},
		"3":{"class_type":"CheckpointLoaderSimple","inputs":{"ckpt_name":"b.ckpt"}},
		"4":{"class_type":"KSampler","inputs":{"model":["1",0]}}}}`
	assert.Equal(t, "b.ckpt+flux.safetensors", comfy.modelOf([]byte(two)))
	assert.Empty(t, comfy.modelOf([]byte(`{"prompt":{"1":{"class_type":"KSampler","inputs":{"ckpt_name":["2",0]}}}}`)), "a link names no model")
	assert.Empty(t, comfy.modelOf([]byte(`not json`)))

	a1111 := &Gateway{cfg: Config{Profile: "a1111"}}
	assert.Equal(t, "sd_xl_base_1.0", a1111.modelOf([]byte(`{"prompt":"x","override_settings":{"sd_model_checkpoint":"sd_xl_base_1.0"}}`)))
	assert.Empty(t, a1111.modelOf([]byte(`{"prompt":"x"}`)), "the machine's current model: any GPU")

	plain := &Gateway{cfg: Config{Profile: "comfyui", PlainDispatch: true}}
	assert.Empty(t, plain.modelOf([]byte(modelPrompt(1, 1, "c", "x.safetensors"))))
}
