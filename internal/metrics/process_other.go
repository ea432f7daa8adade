//go:build !unix

package metrics

// haveRusage says that cpuSeconds reads getrusage(2): not here, so
// process_cpu_seconds_total is left out.
const haveRusage = false

// cpuSeconds and maxFDs are read from getrusage(2) and getrlimit(2) on
// Unix; elsewhere they read 0.
func cpuSeconds() float64 { return 0 }

func maxFDs() float64 { return 0 }
