package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gpulock/gpulock/internal/fakea1111"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/gpulock/gpulock/internal/simgpu"
)

// The simulated card and models: both services' models fit with one job's
// working memory. A1111's jobs (hires fix) need more working memory than
// ComfyUI's: a ComfyUI job that starts beside a running A1111 job squeezes
// in (an overlap: both run, slowly), an A1111 job that starts beside a
// ComfyUI job runs out of memory. A GPU used one job at a time has neither.
const (
	cardVRAM     = 24 * simgpu.GiB
	comfyWorking = 4 * simgpu.GiB
	a1111Working = 7 * simgpu.GiB
	comfyModel   = 8 * simgpu.GiB
	a1111Model   = 6 * simgpu.GiB
)

// gpuStack is one simulated GPU with its two fake backends, and shims in
// front of them when gpulock is on.
type gpuStack struct {
	index      int
	gpu        *simgpu.GPU
	comfy      *fakecomfy.Server
	a1111      *fakea1111.Server
	comfyURL   string // where clients send ComfyUI jobs: the shim, or the backend itself
	a1111URL   string
	comfyShim  *shim.Shim
	a1111Shim  *shim.Shim
	closers    []func()
	background sync.WaitGroup
}

// startStack starts GPU index's backends in simDir, and shims using
// lockDir when withShims is set.
func startStack(index int, simDir, lockDir string, step time.Duration, withShims bool) (*gpuStack, error) {
	st := &gpuStack{index: index}
	var err error
	// One simulated GPU, seen by each backend with its own working memory.
	st.gpu, err = simgpu.Open(simDir, index, simgpu.Options{TotalVRAM: cardVRAM, WorkingVRAM: comfyWorking})
	if err != nil {
		return nil, err
	}
	a1111GPU, err := simgpu.Open(simDir, index, simgpu.Options{TotalVRAM: cardVRAM, WorkingVRAM: a1111Working})
	if err != nil {
		return nil, err
	}
	if st.comfy, err = fakecomfy.New(fakecomfy.Config{GPU: st.gpu, StepDuration: step, ModelBytes: comfyModel}); err != nil {
		return nil, err
	}
	st.closers = append(st.closers, func() { st.comfy.Close() })
	if st.a1111, err = fakea1111.New(fakea1111.Config{GPU: a1111GPU, StepDuration: step, ModelBytes: a1111Model}); err != nil {
		st.close()
		return nil, err
	}
	st.closers = append(st.closers, func() { st.a1111.Close() })
	comfyBackend, err := st.serve(st.comfy)
	if err != nil {
		st.close()
		return nil, err
	}
	a1111Backend, err := st.serve(st.a1111)
	if err != nil {
		st.close()
		return nil, err
	}
	st.comfyURL, st.a1111URL = comfyBackend, a1111Backend
	if !withShims {
		return st, nil
	}
	if st.comfyShim, st.comfyURL, err = st.startShim("comfyui", comfyBackend, lockDir); err != nil {
		st.close()
		return nil, err
	}
	if st.a1111Shim, st.a1111URL, err = st.startShim("a1111", a1111Backend, lockDir); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// serve serves h on a loopback port until the stack closes.
func (st *gpuStack) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	st.background.Go(func() { _ = srv.Serve(ln) })
	st.closers = append(st.closers, func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

// The demo's status pages draw a minute of one-second bars, not the
// shim's default hour of minutes: the demo lasts seconds.
const (
	pageProbeEvery = 100 * time.Millisecond
	pageBucket     = time.Second
)

// startShim runs a shim for profile in front of backend.
func (st *gpuStack) startShim(profile, backend, lockDir string) (*shim.Shim, string, error) {
	p, err := shim.LookupProfile(profile)
	if err != nil {
		return nil, "", err
	}
	u, err := url.Parse(backend)
	if err != nil {
		return nil, "", err
	}
	s, err := shim.New(shim.Config{Upstream: u, GPU: st.index, LockDir: lockDir, Profile: p,
		WatchInterval: 200 * time.Millisecond, PageProbeEvery: pageProbeEvery, PageBucket: pageBucket, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.background.Go(func() {
		if err := s.Serve(ctx, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("shim:", err)
		}
	})
	st.closers = append(st.closers, cancel)
	return s, "http://" + ln.Addr().String(), nil
}

// close stops everything the stack started, shims first, and waits for it.
func (st *gpuStack) close() {
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
	st.background.Wait()
}
