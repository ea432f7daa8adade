package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/statuspage"
)

// DefaultPageProbeEvery is how often the status page's sampler probes the
// locks and the backend (Config.PageProbeEvery).
const DefaultPageProbeEvery = 2 * time.Second

// page is the shim's live status page (/gpulock/, package statuspage) and
// what it shows beyond the lock files: the shim's running and finished
// jobs, the backend's health, VRAM and progress, and an hour of history.
// A sampler, started by Start and stopped by Shutdown, probes every
// PageProbeEvery.
type page struct {
	s       *Shim
	handler *statuspage.Handler
	history *statuspage.History
	recent  *statuspage.Recent
	every   time.Duration

	mu       sync.Mutex
	running  map[*hold]string // the client of each holding
	backend  statuspage.Backend
	vram     *statuspage.VRAM
	progress *statuspage.Progress // of the oldest running job
}

func newPage(s *Shim) *page {
	p := &page{s: s, history: statuspage.NewHistory(s.cfg.PageBucket, 0), recent: statuspage.NewRecent(0),
		every: s.cfg.PageProbeEvery, running: map[*hold]string{}}
	if p.every <= 0 {
		p.every = DefaultPageProbeEvery
	}
	p.handler = statuspage.NewHandler(func(r *http.Request) (any, error) {
		st, err := s.status()
		if err != nil {
			return nil, err
		}
		v := s.viewFor(r) // the page and its events show what /gpulock/status shows this caller
		st.Status, st.Shim = v.lockStatus(st.Status), v.shimStatus(st.Shim)
		return st, nil
	}, statuspage.Options{})
	return p
}

// servePage serves the status page's paths and reports whether r was one.
func (s *Shim) servePage(w http.ResponseWriter, r *http.Request) bool {
	if !statuspage.Serves(r.URL.Path) {
		return false
	}
	s.page.handler.ServeHTTP(w, r)
	return true
}

// clientOf names a GPU request's client for the line and the page: its
// X-Request-Id, or else the client_id of a ComfyUI prompt ("" lets the
// line make up a name).
func (s *Shim) clientOf(r *http.Request, body []byte) string {
	if id := r.Header.Get(HeaderRequestID); id != "" || s.cfg.Profile.Name != "comfyui" {
		return id
	}
	m, v := jsonObject(body, r.Header)
	var client string
	if v == gpuWork {
		if raw, ok := m["client_id"]; ok {
			_ = json.Unmarshal(raw, &client)
		}
	}
	return client
}

// started records a holding that took the lock.
func (p *page) started(hd *hold, client string) {
	if hd.route == routeBackendWork {
		client = "backend"
	}
	p.mu.Lock()
	p.running[hd] = client
	p.mu.Unlock()
	p.handler.Notify()
}

// finished records a holding that released the lock.
func (p *page) finished(hd *hold, outcome string, ran time.Duration) {
	p.mu.Lock()
	client := p.running[hd]
	delete(p.running, hd)
	if len(p.running) == 0 {
		p.progress = nil
	}
	p.mu.Unlock()
	if p.s.cfg.Profile.Name != "comfyui" && p.s.cfg.Profile.Name != "a1111" {
		p.learnBackend(outcome)
	}
	p.recent.Add(statuspage.Finished{Service: p.s.cfg.Name, Client: client, Route: hd.route,
		WaitedSeconds: hd.waited.Seconds(), RanSeconds: ran.Seconds(), Result: outcome, Ended: time.Now()})
	p.handler.Notify()
}

// learnBackend records what a job's outcome says about a backend that is
// not probed: up when it answered, down when it could not be reached.
func (p *page) learnBackend(outcome string) {
	b := statuspage.Backend{Up: true, Checked: time.Now()}
	switch outcome {
	case outcomeUpstreamDown:
		b = statuspage.Backend{Up: false, Error: "the last GPU request could not reach it", Checked: b.Checked}
	case outcomeDone, outcomeRefused:
	default:
		return
	}
	p.mu.Lock()
	p.backend = b
	p.mu.Unlock()
}

// setProgress records the backend's progress on its running job.
func (p *page) setProgress(value, max float64) {
	p.mu.Lock()
	p.progress = &statuspage.Progress{Value: value, Max: max}
	p.mu.Unlock()
	p.handler.Notify()
}

// run probes every p.every until ctx ends.
func (p *page) run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		p.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe records the locks' state in the history and asks the backend how
// it is: up, its VRAM, its progress.
func (p *page) probe(ctx context.Context) {
	now := time.Now()
	if all, err := p.gpus(); err == nil {
		own := p.s.lock.Name()
		for _, g := range all {
			line := len(g.Waiters)
			if g.Name == own {
				// The lock files show this process once however many of its
				// requests wait: count those one by one.
				line = p.s.line.len()
				for _, w := range g.Waiters {
					if w.PID != os.Getpid() {
						line++
					}
				}
			}
			p.history.Record(g.Name, now, g.Held, line)
		}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.every)
	defer cancel()
	b := statuspage.Backend{Up: true, Checked: now}
	var vram *statuspage.VRAM
	var err error
	switch p.s.cfg.Profile.Name {
	case "comfyui":
		var st struct {
			Devices []struct {
				VRAMTotal int64 `json:"vram_total"`
				VRAMFree  int64 `json:"vram_free"`
			} `json:"devices"`
		}
		if err = p.s.getJSON(ctx, "/system_stats", &st); err == nil && len(st.Devices) > 0 && st.Devices[0].VRAMTotal > 0 {
			d := st.Devices[0]
			vram = &statuspage.VRAM{Used: d.VRAMTotal - d.VRAMFree, Total: d.VRAMTotal}
		}
	case "a1111":
		var m struct {
			CUDA struct {
				System struct {
					Used  int64 `json:"used"`
					Total int64 `json:"total"`
				} `json:"system"`
			} `json:"cuda"`
		}
		if err = p.s.getJSON(ctx, "/sdapi/v1/memory", &m); err == nil && m.CUDA.System.Total > 0 {
			vram = &statuspage.VRAM{Used: m.CUDA.System.Used, Total: m.CUDA.System.Total}
		}
		if err == nil && p.runningCount() > 0 {
			p.probeA1111Progress(ctx)
		}
	default:
		return // a generic backend has no cheap path to probe: finished jobs tell (finished)
	}
	if err != nil {
		if parent.Err() != nil {
			return // the shim is stopping
		}
		b = statuspage.Backend{Up: false, Error: err.Error(), Checked: now}
	}
	p.mu.Lock()
	changed := p.backend.Up != b.Up
	p.backend, p.vram = b, vram
	p.mu.Unlock()
	if changed {
		p.handler.Notify()
	}
}

// probeA1111Progress reads A1111's progress on its running job.
func (p *page) probeA1111Progress(ctx context.Context) {
	var pr struct {
		State struct {
			SamplingStep  int `json:"sampling_step"`
			SamplingSteps int `json:"sampling_steps"`
		} `json:"state"`
	}
	if p.s.getJSON(ctx, "/sdapi/v1/progress?skip_current_image=true", &pr) == nil && pr.State.SamplingSteps > 0 {
		p.setProgress(float64(pr.State.SamplingStep), float64(pr.State.SamplingSteps))
	}
}

func (p *page) runningCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

// gpus reads every GPU lock in the shim's lock directory.
func (p *page) gpus() ([]gpulock.Status, error) {
	st, err := p.s.lock.Status()
	if err != nil {
		return nil, err
	}
	return gpulock.ListStatus(filepath.Dir(st.Path))
}

// fill adds the page's part to st, and each request's estimated start.
func (p *page) fill(st *Status) {
	now := time.Now()
	host, _ := os.Hostname()
	live := statuspage.Live{Host: host, Running: []statuspage.Job{}, Recent: p.recent.List(),
		History: p.history.Snapshot(now), BucketSeconds: p.history.Width().Seconds(),
		HistorySeconds: p.history.Span().Seconds(), MaxHoldSeconds: p.s.cfg.MaxHold.Seconds(), Banners: []statuspage.Banner{}}
	if all, err := p.gpus(); err == nil {
		live.GPUs = all
	}
	live.MeanJobSeconds, live.MeanOf = p.recent.MeanRan()
	p.mu.Lock()
	live.Backend, live.VRAM = p.backend, p.vram
	for hd, client := range p.running {
		live.Running = append(live.Running, statuspage.Job{Client: client, Route: hd.route, Since: hd.since,
			WaitedSeconds: hd.waited.Seconds(), RanSeconds: now.Sub(hd.since).Seconds()})
	}
	slices.SortFunc(live.Running, func(a, b statuspage.Job) int { return a.Since.Compare(b.Since) })
	if len(live.Running) > 0 && p.progress != nil {
		pr := *p.progress
		live.Running[0].Progress = &pr
	}
	p.mu.Unlock()
	if !live.Backend.Up && !live.Backend.Checked.IsZero() {
		live.Banners = append(live.Banners, statuspage.Banner{Kind: statuspage.BannerBackendDown,
			Text: fmt.Sprintf("The backend (%s at %s) does not answer: %s. GPU requests fail until it is back.",
				p.s.cfg.Profile.Name, p.s.cfg.Upstream.Redacted(), live.Backend.Error)})
	}
	if max := p.s.cfg.MaxHold; max > 0 && st.Holder != nil && st.Holder.HeldSeconds > max.Seconds() {
		live.Banners = append(live.Banners, statuspage.Banner{Kind: statuspage.BannerMaxHold,
			Text: fmt.Sprintf("GPU %d has been held by %s for %s, past --max-hold %s.",
				p.s.cfg.GPU, st.Holder.Service, time.Duration(st.Holder.HeldSeconds*float64(time.Second)).Round(time.Second), max)})
	}
	ran := 0.0
	if len(live.Running) > 0 {
		ran = live.Running[0].RanSeconds
	}
	for i := range st.Shim.Queue {
		q := &st.Shim.Queue[i]
		if est, ok := statuspage.EstimateStart(q.Position, st.Held, ran, live.MeanJobSeconds); ok {
			q.EstimatedStartSeconds = &est
		}
	}
	st.Shim.Live = live
}

// close ends the page's event streams.
func (p *page) close() { p.handler.Close() }
