package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// passthroughOpts are the passthrough benchmark's settings.
type passthroughOpts struct {
	runs     int
	duration time.Duration
	threads  int
	conns    int
}

// target is one way to reach the tiny backend.
type target struct {
	name string
	addr string
}

// wrkResult is what one wrk run reported.
type wrkResult struct {
	rps    float64
	p50    time.Duration
	p99    time.Duration
	errors string // socket errors and non-2xx answers, if any
}

// passthrough starts the tiny backend and the four proxies in front of it
// and runs wrk against each, opts.runs rounds in turn (each round in a
// rotated order), then prints medians.
func (b *bench) passthrough(o passthroughOpts) error {
	targets, err := b.startFronts()
	if err != nil {
		return err
	}

	// Warm up every target (connection pools, nginx workers).
	for _, t := range targets {
		if _, err := b.wrk(t, o, 2*time.Second); err != nil {
			return err
		}
	}
	results := map[string][]wrkResult{}
	for round := range o.runs {
		// Each round starts one target later, so that none always follows
		// the same other (the machine is shared: order effects are real).
		order := append(slices.Clone(targets[round%len(targets):]), targets[:round%len(targets)]...)
		for _, t := range order {
			r, err := b.wrk(t, o, o.duration)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d %-14s %10.0f req/s  p50 %-9s p99 %-9s %s\n", round+1, t.name, r.rps, r.p50, r.p99, r.errors)
			results[t.name] = append(results[t.name], r)
		}
	}

	med := func(name string) (rps float64, p50, p99 time.Duration) {
		rs := results[name]
		return median(rs, func(r wrkResult) float64 { return r.rps }),
			time.Duration(median(rs, func(r wrkResult) float64 { return float64(r.p50) })),
			time.Duration(median(rs, func(r wrkResult) float64 { return float64(r.p99) }))
	}
	_, _, directP99 := med("direct")
	nginxRPS, _, _ := med("nginx")
	tunedRPS, _, _ := med("proxy-tuned")
	fmt.Printf("wrk -t%d -c%d -d%s --latency, %d runs each, medians\n", o.threads, o.conns, o.duration, o.runs)
	fmt.Printf("| %-14s | %10s | %9s | %9s | %14s | %9s | %8s | %s |\n", "target", "req/s", "p50", "p99", "p99 - direct", "% tuned", "% nginx", "all runs req/s")
	for _, t := range targets {
		rps, p50, p99 := med(t.name)
		var all []string
		for _, r := range results[t.name] {
			all = append(all, strconv.FormatFloat(r.rps, 'f', 0, 64))
		}
		fmt.Printf("| %-14s | %10.0f | %9s | %9s | %14s | %8.1f%% | %7.1f%% | %s |\n", t.name, rps,
			p50.Round(time.Microsecond), p99.Round(time.Microsecond), (p99 - directP99).Round(time.Microsecond),
			100*rps/tunedRPS, 100*rps/nginxRPS, strings.Join(all, ", "))
	}
	// Paired per round: the shim and the tuned proxy ran back to back.
	var ratios, added []string
	for i := range results["shim"] {
		ratios = append(ratios, fmt.Sprintf("%.1f%%", 100*results["shim"][i].rps/results["proxy-tuned"][i].rps))
		added = append(added, (results["shim"][i].p99 - results["direct"][i].p99).Round(time.Microsecond).String())
	}
	fmt.Printf("per round: shim / proxy-tuned req/s %s; shim p99 - direct p99 %s\n", strings.Join(ratios, ", "), strings.Join(added, ", "))
	return nil
}

// startFronts starts the tiny backend and, in front of it, the shim, the
// two plain ReverseProxies and nginx, and returns the five ways to reach it.
func (b *bench) startFronts() ([]target, error) {
	backend, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if _, err := b.start("backend", backend, b.self, "child", "backend", backend); err != nil {
		return nil, err
	}
	up := "http://" + backend
	targets := []target{{name: "direct", addr: backend}}
	add := func(name string, argv func(addr string) []string) error {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		if _, err := b.start(name, addr, argv(addr)...); err != nil {
			return err
		}
		targets = append(targets, target{name: name, addr: addr})
		return nil
	}
	lockDir := filepath.Join(b.tmp, "locks")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, err
	}
	if err := add("shim", func(addr string) []string {
		return []string{b.gpulock, "shim", "--listen", addr, "--upstream", up, "--profile", "generic",
			"--gpu-route", "POST " + pathGen, "--lock-dir", lockDir, "--gpu", "0"}
	}); err != nil {
		return nil, err
	}
	for _, role := range []string{"proxy-tuned", "proxy-default"} {
		if err := add(role, func(addr string) []string { return []string{b.self, "child", role, addr, up} }); err != nil {
			return nil, err
		}
	}
	if err := add("nginx", func(addr string) []string { return b.nginxArgv(addr, backend) }); err != nil {
		return nil, err
	}
	return targets, nil
}

// median returns the median of f over rs (the mean of the middle two for
// an even count).
func median[T any](rs []T, f func(T) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// wrk runs wrk against t for d and parses its report.
func (b *bench) wrk(t target, o passthroughOpts, d time.Duration) (wrkResult, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(b.ctx, "wrk", "-t"+strconv.Itoa(o.threads), "-c"+strconv.Itoa(o.conns),
		"-d"+strconv.Itoa(secs)+"s", "--latency", "http://"+t.addr+"/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", t.name, err, out)
	}
	r, err := parseWrk(out)
	if err != nil {
		return r, fmt.Errorf("wrk %s: %w: %s", t.name, err, out)
	}
	return r, nil
}

// parseWrk reads requests/s and the 50% and 99% latencies of wrk --latency.
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	var errs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50 = parseWrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99 = parseWrkDuration(f[1])
		case len(f) > 0 && (f[0] == "Socket" || f[0] == "Non-2xx"):
			errs = append(errs, strings.Join(f, " "))
		}
	}
	r.errors = strings.Join(errs, "; ")
	if r.rps == 0 || r.p99 == 0 {
		return r, fmt.Errorf("no Requests/sec or 99%% in the output")
	}
	return r, nil
}

// parseWrkDuration parses wrk's 1.23ms, 456.00us, 1.02s.
func parseWrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			return time.Duration(f * float64(u.unit))
		}
	}
	return 0
}

// nginxArgv writes an nginx configuration proxying addr to backend and
// returns the command that runs it in the foreground.
func (b *bench) nginxArgv(addr, backend string) []string {
	dir := filepath.Join(b.tmp, "nginx")
	_ = os.MkdirAll(dir, 0o755)
	conf := fmt.Sprintf(`worker_processes 2;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream backend {
        server %[2]s;
        keepalive 64;
    }
    server {
        listen %[3]s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, backend, addr)
	path := filepath.Join(dir, "nginx.conf")
	_ = os.WriteFile(path, []byte(conf), 0o644)
	return []string{"/usr/sbin/nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path}
}
