package statuspage

import (
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Live is the status page's part of a shim's status. Its fields sit
// beside the shim's own in the JSON of /gpulock/status (the shim embeds
// it), so the page, the JSON and `gpulock status` share one model: the
// holder, the waiters and since when come from the lock files in all three.
type Live struct {
	// Host is the machine the shim runs on.
	Host string `json:"host"`
	// GPUs is the state of every GPU lock in the shim's lock directory (the
	// list `gpulock status` prints), so the page shows the whole machine.
	GPUs []gpulock.Status `json:"gpus"`
	// Backend is the backend's health as last probed.
	Backend Backend `json:"backend"`
	// Running lists the shim's jobs that hold the GPU now.
	Running []Job `json:"running"`
	// Recent lists the last finished jobs, newest first.
	Recent []Finished `json:"recent"`
	// History holds, per lock name, the busy share and line length over
	// the last hour, oldest first.
	History map[string][]Sample `json:"history"`
	// BucketSeconds is the width of one History sample.
	BucketSeconds float64 `json:"bucket_seconds"`
	// HistorySeconds is the span History covers (an hour by default).
	HistorySeconds float64 `json:"history_seconds"`
	// VRAM is the GPU's memory as the backend reports it; null if unknown.
	VRAM *VRAM `json:"vram"`
	// MeanJobSeconds is the mean run length of the recent finished jobs
	// that ran (the basis of the estimated starts); 0 when none ran yet.
	MeanJobSeconds float64 `json:"mean_job_seconds"`
	// MeanOf is how many jobs MeanJobSeconds averages.
	MeanOf int `json:"mean_of"`
	// MaxHoldSeconds is the shim's --max-hold; 0 when off.
	MaxHoldSeconds float64 `json:"max_hold_seconds"`
	// Banners are the problems to show on top of the page.
	Banners []Banner `json:"banners"`
}

// Backend is the backend's health.
type Backend struct {
	// Up reports whether the backend answered the last probe.
	Up bool `json:"up"`
	// Error says why the last probe failed.
	Error string `json:"error,omitempty"`
	// Checked is when the backend was last probed.
	Checked time.Time `json:"checked"`
}

// Job is a job holding the GPU.
type Job struct {
	// Client names the job's client: its X-Request-Id, or the ComfyUI
	// client_id of its prompt, or a name the shim made up.
	Client string `json:"client"`
	// Route is the request that started the job, such as "POST /prompt",
	// or "backend" for work the backend started on its own.
	Route string `json:"route"`
	// Since is when the job took the GPU.
	Since time.Time `json:"since"`
	// WaitedSeconds is how long it waited in line.
	WaitedSeconds float64 `json:"waited_seconds"`
	// RanSeconds is how long it has held the GPU, at the time of reading.
	RanSeconds float64 `json:"ran_seconds"`
	// Progress is the backend's progress report; null when it reports none.
	Progress *Progress `json:"progress"`
}

// Progress is a backend's progress report: Value out of Max steps.
type Progress struct {
	Value float64 `json:"value"`
	Max   float64 `json:"max"`
}

// Finished is a job that released the GPU.
type Finished struct {
	Service       string    `json:"service"`
	Client        string    `json:"client"`
	Route         string    `json:"route"`
	WaitedSeconds float64   `json:"waited_seconds"`
	RanSeconds    float64   `json:"ran_seconds"`
	Result        string    `json:"result"`
	Ended         time.Time `json:"ended"`
}

// Sample is one History bucket.
type Sample struct {
	// Start is when the bucket starts.
	Start time.Time `json:"start"`
	// Busy is the share of the bucket's probes that found the GPU held, 0 to 1.
	Busy float64 `json:"busy"`
	// Line is the longest line seen in the bucket.
	Line int `json:"line"`
}

// VRAM is a GPU's memory in bytes.
type VRAM struct {
	Used  int64 `json:"used"`
	Total int64 `json:"total"`
}

// Banner is a problem the page shows on top.
type Banner struct {
	// Kind is backend_down or max_hold.
	Kind string `json:"kind"`
	// Text says what is wrong, for people.
	Text string `json:"text"`
}

// Banner kinds.
const (
	BannerBackendDown = "backend_down"
	BannerMaxHold     = "max_hold"
)
