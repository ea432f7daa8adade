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
//
// To compare builds in the same run, give -gpulock a comma-separated list:
// each round then runs every build once, then flock(1), and each build's
// ratios are taken against that round's flock(1).
//
//	go run ./scripts/execbench -gpulock /tmp/old,/tmp/new -pairs 200
//
// A build whose file name starts with gpulock-exec is the small binary,
// run without the `exec` argument:
//
//	go build -o /tmp/gpulock-exec ./cmd/gpulock-exec
//	go run ./scripts/execbench -gpulock /tmp/gpulock-exec,/tmp/gpulock
package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	gpulockPath := flag.String("gpulock", "gpulock", "the gpulock binary to measure, or several, comma-separated, measured in the same rounds")
	pairs := flag.Int("pairs", 40, "interleaved pairs to measure")
	warm := flag.Int("warm", 5, "warm-up pairs, not counted")
	flag.Parse()
	if err := run(*gpulockPath, *pairs, *warm); err != nil {
		fmt.Fprintln(os.Stderr, "execbench:", err)
		os.Exit(1)
	}
}

func run(gpulockPaths string, pairs, warm int) error {
	if pairs < 1 || warm < 0 {
		return fmt.Errorf("execbench: -pairs must be at least 1 and -warm at least 0")
	}
	var builds []string
	for _, p := range strings.Split(gpulockPaths, ",") {
		g, err := exec.LookPath(p)
		if err != nil {
			return fmt.Errorf("execbench: the gpulock binary: %w (build it: go build -o /tmp/gpulock ./cmd/gpulock)", err)
		}
		builds = append(builds, g)
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

	b := []string{flock, filepath.Join(dir, "gpu0.lock"), truePath}
	sides := make([]side, len(builds))
	for i, g := range builds {
		sides[i].args = append(execArgs(g), "--lock-dir", dir, "--quiet", "--gpu", "0", "--", truePath)
	}
	var ref side
	for i := range warm + pairs {
		runs := make([]usage, len(sides))
		for j := range sides {
			if runs[j], err = timeRun(sides[j].args); err != nil {
				return err
			}
		}
		db, err := timeRun(b)
		if err != nil {
			return err
		}
		if i < warm {
			continue
		}
		ref.add(db, 1)
		for j := range sides {
			sides[j].add(runs[j], float64(runs[j].wall)/float64(db.wall))
		}
	}
	fmt.Printf("%d pairs after %d warm-ups\n", pairs, warm)
	fmt.Printf("flock(1):     median %s  (p25 %s, p75 %s)\n", pct(ref.wall, 50), pct(ref.wall, 25), pct(ref.wall, 75))
	for j, s := range sides {
		if len(sides) > 1 {
			fmt.Printf("== %s\n", builds[j])
		}
		fmt.Printf("gpulock exec: median %s  (p25 %s, p75 %s)\n", pct(s.wall, 50), pct(s.wall, 25), pct(s.wall, 75))
		fmt.Printf("ratio:        median %.2fx (p25 %.2fx, p75 %.2fx, min %.2fx, max %.2fx)  target <= 2.50x\n",
			pct(s.ratios, 50), pct(s.ratios, 25), pct(s.ratios, 75), pct(s.ratios, 0), pct(s.ratios, 100))
		fmt.Printf("cpu (user+sys, median): gpulock exec %s, flock(1) %s; minor page faults (median): %d, %d\n",
			pct(s.cpu, 50), pct(ref.cpu, 50), pct(s.faults, 50), pct(ref.faults, 50))
	}
	return nil
}

// execArgs starts the command line of build g: `g exec`, or `g` alone for
// the small gpulock-exec binary (a name that starts with gpulock-exec).
func execArgs(g string) []string {
	if strings.HasPrefix(filepath.Base(g), "gpulock-exec") {
		return []string{g}
	}
	return []string{g, "exec"}
}

// side collects one command's runs.
type side struct {
	args      []string
	wall, cpu []time.Duration
	faults    []int64
	ratios    []float64
}

func (s *side) add(u usage, ratio float64) {
	s.wall = append(s.wall, u.wall)
	s.cpu = append(s.cpu, u.cpu)
	s.faults = append(s.faults, u.faults)
	s.ratios = append(s.ratios, ratio)
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
