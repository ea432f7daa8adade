package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

const (
	// dialers is how many goroutines open the waiting connections; more
	// would overflow the listen backlog (somaxconn) on a 2-CPU machine.
	dialers = 32
	// fillTimeout bounds the wait for all requests to be waiting.
	fillTimeout = 3 * time.Minute
	// settle is the pause between all requests waiting and the measurement.
	settle = time.Second
)

// waitingOpts are the waiting benchmark's settings.
type waitingOpts struct {
	n      int
	body   int
	runs   int
	window time.Duration
}

// waitSample is one run's measurement of one server.
type waitSample struct {
	idleRSS   int64 // bytes, before any request
	rss       int64 // bytes, with n requests waiting (end of the window)
	cpu       time.Duration
	cpuBefore time.Duration // CPU used until the window, from start-up
}

// waiting measures the shim and a bare net/http server, each in its own
// process, holding o.n requests of o.body bytes each.
func (b *bench) waiting(o waitingOpts) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max // set explicitly, so that children inherit it
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < uint64(o.n)+100 {
		return fmt.Errorf("RLIMIT_NOFILE is %d, need over %d", lim.Cur, o.n)
	}
	backend, err := freeAddr()
	if err != nil {
		return err
	}
	if _, err := b.start("backend", backend, b.self, "child", "backend", backend); err != nil {
		return err
	}
	lockDir := filepath.Join(b.tmp, "locks")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return err
	}
	lock, err := gpulock.New(0, gpulock.WithDir(lockDir))
	if err != nil {
		return err
	}
	h, err := lock.TryAcquire()
	if err != nil {
		return fmt.Errorf("holding the GPU lock: %w", err)
	}
	defer h.Release()

	results := map[string][]waitSample{}
	for run := range o.runs {
		for _, kind := range []string{"bare", "shim"} {
			s, err := b.waitingRun(kind, backend, lockDir, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "run %d %-4s idle %.1f MB, waiting %.1f MB, CPU %s in %s (before: %s)\n", run+1, kind,
				mb(s.idleRSS), mb(s.rss), s.cpu, o.window, s.cpuBefore.Round(time.Millisecond))
			results[kind] = append(results[kind], s)
		}
	}

	fmt.Printf("%d requests waiting, %d-byte bodies, %d runs each, medians\n", o.n, o.body, o.runs)
	fmt.Printf("| %-5s | %8s | %11s | %13s | %13s | %12s | %s |\n", "server", "idle MB", "waiting MB", "KB/req total", "KB/req growth", "CPU in "+o.window.String(), "all runs waiting MB")
	med := map[string]waitSample{}
	for _, kind := range []string{"bare", "shim"} {
		rs := results[kind]
		m := waitSample{
			idleRSS: int64(median(rs, func(s waitSample) float64 { return float64(s.idleRSS) })),
			rss:     int64(median(rs, func(s waitSample) float64 { return float64(s.rss) })),
			cpu:     time.Duration(median(rs, func(s waitSample) float64 { return float64(s.cpu) })),
		}
		med[kind] = m
		var all []string
		for _, s := range rs {
			all = append(all, fmt.Sprintf("%.1f", mb(s.rss)))
		}
		fmt.Printf("| %-5s | %8.1f | %11.1f | %13.2f | %13.2f | %12s | %s |\n", kind, mb(m.idleRSS), mb(m.rss),
			kb(m.rss)/float64(o.n), kb(m.rss-m.idleRSS)/float64(o.n), m.cpu, strings.Join(all, ", "))
	}
	sh, ba := med["shim"], med["bare"]
	fmt.Printf("shim overhead: %.2f KB/request on totals, %.2f KB/request on growth (target <= 2)\n",
		kb(sh.rss-ba.rss)/float64(o.n), kb((sh.rss-sh.idleRSS)-(ba.rss-ba.idleRSS))/float64(o.n))
	return nil
}

func mb(b int64) float64 { return float64(b) / 1e6 }
func kb(b int64) float64 { return float64(b) / 1e3 }

// waitingRun starts one server, fills it with o.n waiting requests, measures
// it and stops it.
func (b *bench) waitingRun(kind, backend, lockDir string, o waitingOpts) (waitSample, error) {
	addr, err := freeAddr()
	if err != nil {
		return waitSample{}, err
	}
	var p *proc
	var count func() (int, error)
	switch kind {
	case "shim":
		p, err = b.start("waiting-shim", addr, b.gpulock, "shim", "--listen", addr, "--upstream", "http://"+backend,
			"--profile", "generic", "--gpu-route", "POST "+pathGen, "--lock-dir", lockDir, "--gpu", "0")
		count = func() (int, error) { return metric("http://"+addr+"/gpulock/metrics", "gpulock_shim_queue_length") }
	case "bare":
		p, err = b.start("waiting-bare", addr, b.self, "child", "bare", addr)
		count = func() (int, error) { return getInt("http://" + addr + pathWaiting) }
	}
	if err != nil {
		return waitSample{}, err
	}
	defer p.stop()
	pid := p.cmd.Process.Pid
	if err := sleep(b.ctx, settle); err != nil {
		return waitSample{}, err
	}
	var s waitSample
	if s.idleRSS, err = vmRSS(pid); err != nil {
		return s, err
	}

	conns, err := b.openWaiting(addr, o)
	defer func() {
		p.stop() // the server first, so that TIME_WAIT stays on its side
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return s, err
	}
	deadline := time.Now().Add(fillTimeout)
	for {
		n, err := count()
		if err == nil && n >= o.n {
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%s: %d of %d requests waiting after %s (%v)", kind, n, o.n, fillTimeout, err)
		}
		if err := sleep(b.ctx, 100*time.Millisecond); err != nil {
			return s, err
		}
	}
	if err := sleep(b.ctx, settle); err != nil {
		return s, err
	}
	c0, err := cpuOf(pid)
	if err != nil {
		return s, err
	}
	if err := sleep(b.ctx, o.window); err != nil {
		return s, err
	}
	c1, err := cpuOf(pid)
	if err != nil {
		return s, err
	}
	s.cpu, s.cpuBefore = c1-c0, c0
	if s.rss, err = vmRSS(pid); err != nil {
		return s, err
	}
	if n, err := count(); err != nil || n != o.n {
		return s, fmt.Errorf("%s: %d waiting at the end of the window, want %d (%v)", kind, n, o.n, err)
	}
	return s, nil
}

// openWaiting opens o.n connections to addr, each sending one POST /gen
// with an o.body-byte body, and returns them open.
func (b *bench) openWaiting(addr string, o waitingOpts) ([]net.Conn, error) {
	req := append([]byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		pathGen, addr, o.body)), bytes.Repeat([]byte{'x'}, o.body)...)
	conns := make([]net.Conn, o.n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan int)
	for range dialers {
		wg.Go(func() {
			for i := range next {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err == nil {
					_, err = c.Write(req)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				conns[i] = c
				mu.Unlock()
			}
		})
	}
	for i := range o.n {
		if b.ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	var open []net.Conn
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	if firstErr == nil {
		firstErr = b.ctx.Err()
	}
	return open, firstErr
}

// vmRSS returns VmRSS of pid in bytes.
func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			return n * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuOf sums the time on CPU (schedstat's first field) of pid's threads.
func cpuOf(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no threads of %d: %v", pid, err)
	}
	var sum int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended
		}
		f := strings.Fields(string(data))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return time.Duration(sum), nil
}

// metric reads one metric (the first series of that name) from a Prometheus text page.
func metric(url, name string) (int, error) {
	body, err := get(url)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(body) {
		if f := strings.Fields(line); len(f) == 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
			v, err := strconv.ParseFloat(f[1], 64)
			return int(v), err
		}
	}
	return 0, fmt.Errorf("no %s at %s", name, url)
}

// getInt reads a page holding one integer.
func getInt(url string) (int, error) {
	body, err := get(url)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(body))
}

// statusClient is a short-lived client for status pages.
var statusClient = &http.Client{Timeout: 10 * time.Second}

func get(url string) (string, error) {
	resp, err := statusClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(data), err
}
