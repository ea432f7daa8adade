package nginxtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// newGWJobs names total jobs, alternating profiles, each of 4-10 steps of
// 5 ms (20-50 ms on the GPU).
func newGWJobs(total int, tag string) []*gwJob {
	jobs := make([]*gwJob, total)
	for i := range jobs {
		jobs[i] = &gwJob{id: fmt.Sprintf("%s-%03d-%08x", tag, i, rand.Uint32()), profile: gwProfiles[i%2], steps: 4 + rand.IntN(7)}
	}
	return jobs
}

// feed hands jobs to workers concurrent clients as the test releases
// them, batch by batch. The test owns the clients: they end at finish, or
// when the test ends.
type feed struct {
	next chan *gwJob
	// ended gets every job once it ended (room for all of them).
	ended  chan *gwJob
	wg     sync.WaitGroup
	once   sync.Once
	cancel context.CancelFunc
}

func newFeed(t *testing.T, ctx context.Context, c *gwClient, workers, capacity int) *feed {
	ctx, cancel := context.WithCancel(ctx)
	f := &feed{next: make(chan *gwJob, capacity), ended: make(chan *gwJob, capacity), cancel: cancel}
	for range workers {
		f.wg.Go(func() {
			for j := range f.next {
				c.run(ctx, j)
				f.ended <- j
			}
		})
	}
	t.Cleanup(func() { f.cancel(); f.finish() }) // a test that failed early
	return f
}

// release hands jobs to the clients.
func (f *feed) release(jobs []*gwJob) {
	for _, j := range jobs {
		f.next <- j
	}
}

// finish waits until every released job ended.
func (f *feed) finish() {
	f.once.Do(func() { close(f.next) })
	f.wg.Wait()
}

// waitEnded waits until a job that ends from now on satisfies cond.
func (f *feed) waitEnded(t *testing.T, what string, cond func(*gwJob) bool) {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case j := <-f.ended:
			if cond(j) {
				return
			}
		case <-deadline:
			t.Fatalf("no job ended %s within %v", what, eventTimeout)
		}
	}
}
