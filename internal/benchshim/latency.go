package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// latencyOpts are the latency benchmark's settings.
type latencyOpts struct {
	rate     int // requests/s over all connections
	conns    int
	duration time.Duration
	runs     int
}

// latencyResult is one paced run against one target.
type latencyResult struct {
	p50, p99, max time.Duration
	sent, failed  int
}

// latency measures each front's latency at a fixed request rate well below
// saturation (wrk measures at saturation, where latency is connections
// divided by throughput). o.conns goroutines each own one keep-alive
// connection and send one GET / every o.conns/o.rate seconds (random
// phase); a request's latency counts from when it was due, not from when it
// was sent, so that a stalled connection's backlog is not hidden
// (coordinated omission).
func (b *bench) latency(o latencyOpts) error {
	targets, err := b.startFronts()
	if err != nil {
		return err
	}
	for _, t := range targets { // warm up
		if _, err := b.paced(t, o, time.Second); err != nil {
			return err
		}
	}
	results := map[string][]latencyResult{}
	for round := range o.runs {
		order := append(slices.Clone(targets[round%len(targets):]), targets[:round%len(targets)]...)
		for _, t := range order {
			r, err := b.paced(t, o, o.duration)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d %-14s p50 %-9s p99 %-9s max %-9s sent %d failed %d\n", round+1, t.name,
				r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), r.sent, r.failed)
			results[t.name] = append(results[t.name], r)
		}
	}
	d := func(name string, f func(latencyResult) time.Duration) time.Duration {
		return time.Duration(median(results[name], func(r latencyResult) float64 { return float64(f(r)) }))
	}
	p99 := func(r latencyResult) time.Duration { return r.p99 }
	directP99 := d("direct", p99)
	fmt.Printf("%d req/s over %d connections, %s per run, %d runs each, medians\n", o.rate, o.conns, o.duration, o.runs)
	fmt.Printf("| %-14s | %9s | %9s | %14s | %9s | %s |\n", "target", "p50", "p99", "p99 - direct", "max", "all runs p99")
	for _, t := range targets {
		var all []string
		for _, r := range results[t.name] {
			all = append(all, r.p99.Round(time.Microsecond).String())
		}
		fmt.Printf("| %-14s | %9s | %9s | %14s | %9s | %s |\n", t.name,
			d(t.name, func(r latencyResult) time.Duration { return r.p50 }).Round(time.Microsecond),
			d(t.name, p99).Round(time.Microsecond), (d(t.name, p99) - directP99).Round(time.Microsecond),
			d(t.name, func(r latencyResult) time.Duration { return r.max }).Round(time.Microsecond), strings.Join(all, ", "))
	}
	var added []string
	for i := range results["shim"] {
		added = append(added, (results["shim"][i].p99 - results["direct"][i].p99).Round(time.Microsecond).String())
	}
	fmt.Printf("per round: shim p99 - direct p99 %s\n", strings.Join(added, ", "))
	return nil
}

// paced runs one paced load against t for d.
func (b *bench) paced(t target, o latencyOpts, d time.Duration) (latencyResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: o.conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + t.addr + "/"
	period := time.Duration(float64(time.Second) * float64(o.conns) / float64(o.rate))
	start := time.Now()
	end := start.Add(d)
	var mu sync.Mutex
	var lat []time.Duration
	var failed int
	var wg sync.WaitGroup
	for range o.conns {
		wg.Go(func() {
			due := start.Add(time.Duration(rand.Int64N(int64(period))))
			var mine []time.Duration
			bad := 0
			for due.Before(end) && b.ctx.Err() == nil {
				time.Sleep(time.Until(due))
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					bad++
				} else {
					mine = append(mine, time.Since(due))
				}
				due = due.Add(period)
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(lat) == 0 {
		return latencyResult{}, fmt.Errorf("%s: no request succeeded", t.name)
	}
	slices.Sort(lat)
	return latencyResult{p50: rank(lat, 0.50), p99: rank(lat, 0.99), max: lat[len(lat)-1], sent: len(lat) + failed, failed: failed}, b.ctx.Err()
}
