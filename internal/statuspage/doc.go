// Package statuspage serves the live status page a shim shows at
// /gpulock/: one HTML page with its script and style embedded in the binary
// (no CDN, no build step), kept live by server-sent events at
// /gpulock/events that push the same JSON as /gpulock/status, with a
// fallback to polling that JSON.
//
// The package also holds the page's own part of the data model (Live, which
// the shim's status embeds): the jobs running now, the last finished jobs,
// per-GPU history of busy share and line length, VRAM, backend health and
// banners. The page is read-only: it has no action that changes state.
package statuspage
