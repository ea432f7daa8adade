// Package fakeimage makes the images that the fake backends answer with.
package fakeimage

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"sync"
)

// PNG returns a valid 1x1 PNG: every fake job's image.
var PNG = sync.OnceValue(func() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{R: 0x80, G: 0x40, B: 0xc0, A: 0xff})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err) // cannot happen for an in-memory image
	}
	return buf.Bytes()
})
