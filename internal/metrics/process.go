package metrics

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// ProcessCollectors returns the basics of the Go runtime and the process,
// under the names of Prometheus's own Go and process collectors, so that
// their usual dashboards work: go_goroutines, go_memstats_heap_alloc_bytes,
// go_memstats_sys_bytes, process_cpu_seconds_total (Unix), and where /proc tells
// them (Linux) process_open_fds, process_max_fds,
// process_resident_memory_bytes and process_start_time_seconds. Each is
// read at the scrape; nothing runs before (no package initialisation, no
// goroutine). Register them in one registry per process.
func ProcessCollectors() []Collector {
	heap := func(f func(*runtime.MemStats) uint64) func() float64 {
		return func() float64 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return float64(f(&ms))
		}
	}
	out := []Collector{
		NewGaugeFunc(Opts{Name: "go_goroutines", Help: "Number of goroutines that currently exist."},
			func() float64 { return float64(runtime.NumGoroutine()) }),
		NewGaugeFunc(Opts{Name: "go_memstats_heap_alloc_bytes", Help: "Number of heap bytes allocated and currently in use."},
			heap(func(ms *runtime.MemStats) uint64 { return ms.HeapAlloc })),
		NewGaugeFunc(Opts{Name: "go_memstats_sys_bytes", Help: "Number of bytes obtained from system."},
			heap(func(ms *runtime.MemStats) uint64 { return ms.Sys })),
	}
	if haveRusage {
		out = append(out, NewCounterFunc(Opts{Name: "process_cpu_seconds_total", Help: "Total user and system CPU time spent in seconds."}, cpuSeconds))
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return out
	}
	return append(out,
		NewGaugeFunc(Opts{Name: "process_open_fds", Help: "Number of open file descriptors."}, openFDs),
		NewGaugeFunc(Opts{Name: "process_max_fds", Help: "Maximum number of open file descriptors."}, maxFDs),
		NewGaugeFunc(Opts{Name: "process_resident_memory_bytes", Help: "Resident memory size in bytes."}, residentBytes),
		NewGaugeFunc(Opts{Name: "process_start_time_seconds", Help: "Start time of the process since unix epoch in seconds."}, startTime),
	)
}

func openFDs() float64 {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	return float64(max(len(names)-1, 0)) // less the one reading the directory
}

// residentBytes reads the second field of /proc/self/statm (pages).
func residentBytes() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return 0
	}
	return pages * float64(os.Getpagesize())
}

// startTime is boot time (btime of /proc/stat) plus the process's start
// in clock ticks since boot (field 22 of /proc/self/stat, at the kernel's
// usual USER_HZ of 100).
func startTime() float64 {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return 0
	}
	ticks, err := strconv.ParseFloat(f[19], 64)
	if err != nil {
		return 0
	}
	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(all)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0
			}
			return boot + ticks/userHZ
		}
	}
	return 0
}

// userHZ is the unit of /proc's clock ticks on every Linux architecture Go
// supports.
const userHZ = 100
