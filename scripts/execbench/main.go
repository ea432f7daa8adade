// Command execbench measures issue 15's start-up figure: the whole-process
// time of `gpulock exec --gpu 0 -- true` against `flock D/gpu0.lock true`
// on a free lock, as interleaved pairs (A B A B ...) after warm-ups, and
// prints the median of the per-pair ratios with its spread.
//
//	go build -o /tmp/gpulock ./cmd/gpulock
//	go run ./scripts/execbench -gpulock /tmp/gpulock
//
// It also prints the median CPU time and minor page faults of each side
// (getrusage(2)), which the machine's load moves less than wall time.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

func main() {
	gpulockPath := flag.String("gpulock", "gpulock", "the gpulock binary to measure")
	pairs := flag.Int("pairs", 40, "interleaved pairs to measure")
	warm := flag.Int("warm", 5, "warm-up pairs, not counted")
	flag.Parse()
	if err := run(*gpulockPath, *pairs, *warm); err != nil {
		fmt.Fprintln(os.Stderr, "execbench:", err)
		os.Exit(1)
	}
}

func run(gpulockPath string, pairs, warm int) error {
	if pairs < 1 || warm < 0 {
		return fmt.Errorf("execbench: -pairs must be at least 1 and -warm at least 0")
	}
	g, err := exec.LookPath(gpulockPath)
	if err != nil {
		return fmt.Errorf("execbench: the gpulock binary: %w (build it: go build -o /tmp/gpulock ./cmd/gpulock)", err)
	}
	flock, err := exec.LookPath("flock")
	if err != nil {
		return fmt.Errorf("execbench: flock(1): %w (install util-linux)", err)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		return fmt.Errorf("execbench: true(1): %w", err)
	}
	dir, err := os.MkdirTemp("", "execbench-")
	if err != nil {
		return fmt.Errorf("execbench: lock directory: %w", err)
	}
	defer os.RemoveAll(dir)

	a := []string{g, "exec", "--lock-dir", dir, "--quiet", "--gpu", "0", "--", truePath}
	b := []string{flock, filepath.Join(dir, "gpu0.lock"), truePath}
	var ta, tb, ca, cb []time.Duration
	var fa, fb []int64
	var ratios []float64
	for i := range warm + pairs {
		da, err := timeRun(a)
		if err != nil {
			return err
		}
		db, err := timeRun(b)
		if err != nil {
			return err
		}
		if i < warm {
			continue
		}
		ta, tb = append(ta, da.wall), append(tb, db.wall)
		ca, cb = append(ca, da.cpu), append(cb, db.cpu)
		fa, fb = append(fa, da.faults), append(fb, db.faults)
		ratios = append(ratios, float64(da.wall)/float64(db.wall))
	}
	fmt.Printf("%d pairs after %d warm-ups\n", pairs, warm)
	fmt.Printf("gpulock exec: median %s  (p25 %s, p75 %s)\n", pct(ta, 50), pct(ta, 25), pct(ta, 75))
	fmt.Printf("flock(1):     median %s  (p25 %s, p75 %s)\n", pct(tb, 50), pct(tb, 25), pct(tb, 75))
	fmt.Printf("ratio:        median %.2fx (p25 %.2fx, p75 %.2fx, min %.2fx, max %.2fx)  target <= 2.50x\n",
		pct(ratios, 50), pct(ratios, 25), pct(ratios, 75), pct(ratios, 0), pct(ratios, 100))
	fmt.Printf("cpu (user+sys, median): gpulock exec %s, flock(1) %s; minor page faults (median): %d, %d\n",
		pct(ca, 50), pct(cb, 50), pct(fa, 50), pct(fb, 50))
	return nil
}

// usage is what one run cost: wall time, and, from getrusage(2), CPU time
// and minor page faults of the process and the children it waited for
// (for gpulock exec: the command, not the group guard, which it does not
// wait for). CPU time and faults depend less on the machine's load than
// wall time does.
type usage struct {
	wall, cpu time.Duration
	faults    int64
}

// timeRun runs args to the end and returns what it cost.
func timeRun(args []string) (usage, error) {
	c := exec.Command(args[0], args[1:]...)
	start := time.Now()
	out, err := c.CombinedOutput()
	u := usage{wall: time.Since(start)}
	if err != nil {
		return u, fmt.Errorf("execbench: %v: %w: %s", args, err, out)
	}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.faults = ru.Minflt
	}
	return u, nil
}

// pct is the nearest-rank p-th percentile of xs.
func pct[T cmp.Ordered](xs []T, p int) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
