package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkExecVsFlock runs `gpulock exec --gpu 0 -- true` and
// `flock D/gpu0.lock true` b.N times each, whole processes, uncontended, and
// reports both times and their ratio (target: at most 2.5).
func BenchmarkExecVsFlock(b *testing.B) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		if os.Getenv("CI") != "" {
			b.Fatal(err)
		}
		b.Skip(err)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	env := append(os.Environ(), "GPULOCK_DIR="+dir)
	runAll := func(name string, args ...string) time.Duration {
		start := time.Now()
		for range b.N {
			c := exec.Command(name, args...)
			c.Env = env
			if out, err := c.CombinedOutput(); err != nil {
				b.Fatalf("%s %v: %v: %s", name, args, err, out)
			}
		}
		return time.Since(start)
	}
	// Warm both up (page cache, lock file creation).
	_ = exec.Command(binPath, "--lock-dir", dir, "exec", "--", truePath).Run()
	_ = exec.Command(flock, filepath.Join(dir, "gpu0.lock"), truePath).Run()

	b.ResetTimer()
	g := runAll(binPath, "exec", "--gpu", "0", "--", truePath)
	f := runAll(flock, filepath.Join(dir, "gpu0.lock"), truePath)
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(g.Nanoseconds())/n, "gpulock-ns/op")
	b.ReportMetric(float64(f.Nanoseconds())/n, "flock-ns/op")
	b.ReportMetric(float64(g)/float64(f), "ratio")
}
