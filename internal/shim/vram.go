package shim

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// vramPollInterval is how often ComfyUI's free VRAM is read while it frees
// memory: /free answers at once and no event says when it is done.
const vramPollInterval = 50 * time.Millisecond

// vramHandoff frees the backend's VRAM when the GPU goes to another service
// (FreeOnHandoff): ComfyUI unloads its models (POST /free, then the shim
// waits for /system_stats to show more free VRAM); A1111 moves its
// checkpoint to RAM while idle (POST /sdapi/v1/unload-checkpoint) and gets
// it back before its next GPU work (reload-checkpoint). Both count as hold
// time.
type vramHandoff struct {
	s       *Shim
	enabled bool

	mu       sync.Mutex
	unloaded bool // A1111's checkpoint is in RAM since the last hand-off
}

// nextIsOther reports whether the first process in line for l is another
// service. Waiters of this process have no place in line while it holds
// the lock (they queue again after the release, behind everyone else), so
// the first in line is always another process.
func nextIsOther(l *gpulock.Lock, service string) (gpulock.WaiterStatus, bool) {
	st, err := l.Status()
	if err != nil || len(st.Waiters) == 0 {
		return gpulock.WaiterStatus{}, false
	}
	next := st.Waiters[0]
	return next, next.Service != service && next.PID != os.Getpid()
}

// beforeRelease frees the VRAM if the next holder is another service.
func (v *vramHandoff) beforeRelease(l *gpulock.Lock) {
	if !v.enabled {
		return
	}
	next, other := nextIsOther(l, v.s.cfg.Name)
	if !other {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.s.cfg.VRAMTimeout)
	defer cancel()
	start := time.Now()
	var err error
	switch v.s.cfg.Profile.Name {
	case "comfyui":
		err = v.freeComfy(ctx)
	case "a1111":
		err = v.unloadA1111(ctx)
	default:
		return
	}
	took := time.Since(start)
	if err != nil {
		v.s.cfg.Logger.Warn("could not free VRAM before the hand-off", "next", next.Service, "err", err)
		return
	}
	v.s.metrics.handoffs.Inc()
	v.s.metrics.vramFree.Observe(took.Seconds())
	v.s.cfg.Logger.Info("freed VRAM for the next service", "next", next.Service, "took", took.Round(time.Millisecond))
}

// freeComfy asks ComfyUI to unload its models and waits until its free
// VRAM rises.
func (v *vramHandoff) freeComfy(ctx context.Context) error {
	before, err := v.comfyVRAMFree(ctx)
	if err != nil {
		return err
	}
	if err := v.s.callJSON(ctx, http.MethodPost, "/free", `{"unload_models":true,"free_memory":true}`, nil); err != nil {
		return err
	}
	t := time.NewTicker(vramPollInterval)
	defer t.Stop()
	for {
		now, err := v.comfyVRAMFree(ctx)
		if err != nil {
			return err
		}
		if now > before {
			return nil
		}
		select {
		case <-ctx.Done():
			// Nothing was loaded, or it frees slowly: go on either way.
			return nil
		case <-t.C:
		}
	}
}

func (v *vramHandoff) comfyVRAMFree(ctx context.Context) (int64, error) {
	var st struct {
		Devices []struct {
			VRAMFree int64 `json:"vram_free"`
		} `json:"devices"`
	}
	if err := v.s.getJSON(ctx, "/system_stats", &st); err != nil {
		return 0, err
	}
	if len(st.Devices) == 0 {
		return 0, nil
	}
	return st.Devices[0].VRAMFree, nil
}

// errStillBusy says the backend was busy, so its VRAM was left alone.
var errStillBusy = errors.New("shim: the backend is busy; its VRAM stays as it is")

// unloadA1111 moves A1111's checkpoint to RAM, only while A1111 is idle
// (unloading during a generation breaks it).
func (v *vramHandoff) unloadA1111(ctx context.Context) error {
	busy, err := v.s.busy(ctx)
	if err != nil {
		return err
	}
	if busy {
		return errStillBusy
	}
	if err := v.s.callJSON(ctx, http.MethodPost, "/sdapi/v1/unload-checkpoint", "", nil); err != nil {
		return err
	}
	v.mu.Lock()
	v.unloaded = true
	v.mu.Unlock()
	return nil
}

// beforeWork gives A1111 its checkpoint back before GPU work, if a hand-off
// took it away.
func (v *vramHandoff) beforeWork(ctx context.Context) {
	v.mu.Lock()
	unloaded := v.unloaded
	v.unloaded = false
	v.mu.Unlock()
	if !unloaded {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.s.cfg.VRAMTimeout)
	defer cancel()
	if err := v.s.callJSON(ctx, http.MethodPost, "/sdapi/v1/reload-checkpoint", "", nil); err != nil {
		v.s.cfg.Logger.Warn("could not reload A1111's checkpoint", "err", err)
	}
}
