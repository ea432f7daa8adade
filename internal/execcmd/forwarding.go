package execcmd

import (
	"os"
	"os/signal"
)

// forwarding is exec's channel of forwardedSignals. signal.Notify hands
// over to the Go runtime's signal thread and back once per signal (and
// signal.Stop once more per signal, and waits for the signal loop), a
// dozen thread hand-offs that, on a loaded machine, each may wait for a
// CPU. So Notify runs in a goroutine beside exec's first steps (finding
// the command, the lock directory, the first TryAcquire), and whatever
// needs the signals (a wait for the lock, the child's start) waits for it
// first: until then a signal ends gpulock by its default action, as it
// did before Notify, with no child started yet.
type forwarding struct {
	c     chan os.Signal
	ready chan struct{} // closed once Notify has returned
}

// startForwarding registers forwardedSignals in a goroutine that ends
// when they are registered.
func startForwarding() *forwarding {
	f := &forwarding{c: make(chan os.Signal, len(forwardedSignals)), ready: make(chan struct{})}
	go func() {
		defer close(f.ready)
		signal.Notify(f.c, forwardedSignals...)
	}()
	return f
}

// signals waits until the signals are registered and returns their channel.
func (f *forwarding) signals() <-chan os.Signal {
	<-f.ready
	return f.c
}

// stop waits for the registration and undoes it, unless the process is
// about to exit (exitAfterRun): signal.Stop would only cost hand-offs then.
func (f *forwarding) stop(exitAfterRun bool) {
	<-f.ready
	if !exitAfterRun {
		signal.Stop(f.c)
	}
}
