package fakecomfy

import (
	"encoding/binary"

	"github.com/gpulock/gpulock/internal/fakeimage"
)

// Binary websocket frame and image types, as ComfyUI's server.py numbers
// them (BinaryEventTypes.PREVIEW_IMAGE; PNG in send_image).
const (
	binaryPreviewImage = 1
	previewPNG         = 2
)

// previewFrame is one binary preview frame: the 4-byte big-endian event
// type, the 4-byte image type, then the image.
func previewFrame() []byte {
	png := fakeimage.PNG()
	b := make([]byte, 8, 8+len(png))
	binary.BigEndian.PutUint32(b[0:4], binaryPreviewImage)
	binary.BigEndian.PutUint32(b[4:8], previewPNG)
	return append(b, png...)
}

// sendPreviewLocked sends a preview of the running prompt to its client
// (to every socket if it has none), as ComfyUI's latent previews go to the
// running prompt's client. s.mu is held.
func (s *Server) sendPreviewLocked(it *queueItem) {
	if s.cfg.Previews {
		s.sendMessageLocked(it.clientID, wsMessage{binary: true, b: previewFrame()})
	}
}
