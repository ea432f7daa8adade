// Command execbench measures issue 15's start-up figure: the whole-process
// time of `gpulock exec --gpu 0 -- true` against `flock D/gpu0.lock true`
// on a free lock, as interleaved pairs (A B A B ...) after warm-ups, and
// prints the median of the per-pair ratios with its spread.
//
//	go build -o /tmp/gpulock ./cmd/gpulock
//	go run ./scripts/execbench -gpulock /tmp/gpulock
package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	var ta, tb []time.Duration
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
		ta, tb = append(ta, da), append(tb, db)
		ratios = append(ratios, float64(da)/float64(db))
	}
	fmt.Printf("%d pairs after %d warm-ups\n", pairs, warm)
	fmt.Printf("gpulock exec: median %s  (p25 %s, p75 %s)\n", pct(ta, 50), pct(ta, 25), pct(ta, 75))
	fmt.Printf("flock(1):     median %s  (p25 %s, p75 %s)\n", pct(tb, 50), pct(tb, 25), pct(tb, 75))
	fmt.Printf("ratio:        median %.2fx (p25 %.2fx, p75 %.2fx, min %.2fx, max %.2fx)  target <= 2.50x\n",
		pct(ratios, 50), pct(ratios, 25), pct(ratios, 75), pct(ratios, 0), pct(ratios, 100))
	return nil
}

// timeRun runs args to the end and returns its wall time.
func timeRun(args []string) (time.Duration, error) {
	c := exec.Command(args[0], args[1:]...)
	start := time.Now()
	out, err := c.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("execbench: %v: %w: %s", args, err, out)
	}
	return d, nil
}

// pct is the nearest-rank p-th percentile of xs.
func pct[T cmp.Ordered](xs []T, p int) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
