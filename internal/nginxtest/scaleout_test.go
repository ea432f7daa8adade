package nginxtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	machines       = 3
	gpusPerMachine = 2
)

var bothServices = []string{"comfyui", "a1111"}

// cluster is three simulated machines behind examples/nginx/central-lb.conf.
type cluster struct {
	machines  []*machine
	comfyBase string // nginx's ComfyUI port
	a1111Base string // nginx's A1111 port
}

// startCluster starts the machines (extra flags go to every shim of machine
// i, from shimFlags(i)) and the central nginx.
func startCluster(t *testing.T, shimFlags func(i int) []string) *cluster {
	t.Helper()
	c := &cluster{}
	servers := map[string]string{}
	for i := 1; i <= machines; i++ {
		m := startMachine(t, i, gpusPerMachine, shimFlags(i)...)
		c.machines = append(c.machines, m)
		for g := range gpusPerMachine {
			servers[fmt.Sprintf("gpu-host-%d:%d", i, 3188+g)] = "127.0.0.1:" + strconv.Itoa(m.comfyShim[g])
			servers[fmt.Sprintf("gpu-host-%d:%d", i, 7870+g)] = "127.0.0.1:" + strconv.Itoa(m.a1111Shim[g])
		}
	}
	comfyPort, a1111Port := freePort(t), freePort(t)
	startNginx(t, "central-lb.conf", servers, map[string]int{"8188": comfyPort, "7860": a1111Port})
	c.comfyBase = "http://127.0.0.1:" + strconv.Itoa(comfyPort)
	c.a1111Base = "http://127.0.0.1:" + strconv.Itoa(a1111Port)
	return c
}

// job is one client request and what became of it.
type job struct {
	id      string
	service string
	err     error
}

// runJobs sends jobs of services (in turn) from concurrent clients through
// the load balancer, each with a unique id (ComfyUI's prompt_id, A1111's
// force_task_id), and calls after(n) once n jobs have ended, if after is set.
func (c *cluster) runJobs(t *testing.T, total, clients int, services []string, after func(done int)) []job {
	t.Helper()
	jobs := make([]job, total)
	for i := range jobs {
		jobs[i].id = fmt.Sprintf("job-%04d-%08x", i, rand.Uint32())
		jobs[i].service = services[i%len(services)]
	}
	next := make(chan int, total)
	for i := range jobs {
		next <- i
	}
	close(next)
	ctx, cancel := context.WithTimeout(context.Background(), 4*eventTimeout)
	defer cancel()
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			comfy := &loadgen.Client{Base: c.comfyBase, Affinity: true}
			a1111 := &loadgen.Client{Base: c.a1111Base}
			for i := range next {
				j := &jobs[i]
				steps := 3 + rand.IntN(4)
				if j.service == "comfyui" {
					_, _, j.err = comfy.RunComfyID(ctx, fakecomfy.TextToImagePrompt(steps, int64(i)), j.id)
				} else {
					_, j.err = a1111.RunA1111Task(ctx, steps, j.id)
				}
				mu.Lock()
				done++
				n := done
				mu.Unlock()
				if after != nil {
					after(n)
				}
			}
		})
	}
	wg.Wait()
	return jobs
}

// begun counts, per job id, how often a job began on each machine's GPUs,
// from the simulated GPUs' journals; and per GPU, how many jobs began.
func (c *cluster) begun(t *testing.T) (perJob map[string][]string, perGPU map[string]int) {
	t.Helper()
	perJob, perGPU = map[string][]string{}, map[string]int{}
	for _, m := range c.machines {
		for g := range gpusPerMachine {
			refs, err := m.gpu(t, g).Journal()
			require.NoError(t, err)
			where := fmt.Sprintf("machine%d/gpu%d", m.index, g)
			perGPU[where] = len(refs)
			for _, r := range refs {
				perJob[r.JobID] = append(perJob[r.JobID], where)
			}
		}
	}
	return perJob, perGPU
}

func (c *cluster) overlaps(t *testing.T) int64 {
	t.Helper()
	var n int64
	for _, m := range c.machines {
		for g := range gpusPerMachine {
			st, err := m.gpu(t, g).Stats()
			require.NoError(t, err)
			n += st.Overlaps
		}
	}
	return n
}

func TestScaleOutBehindNginx(t *testing.T) {
	c := startCluster(t, func(int) []string { return []string{"--max-queue", "16"} })
	const total = 300
	jobs := c.runJobs(t, total, 24, bothServices, nil)
	for _, j := range jobs {
		require.NoError(t, j.err, "job %s (%s)", j.id, j.service)
	}
	assert.Zero(t, c.overlaps(t), "no two jobs ever ran on one GPU at once")
	perJob, perGPU := c.begun(t)
	for _, j := range jobs {
		assert.Len(t, perJob[j.id], 1, "job %s ran exactly once", j.id)
	}
	t.Logf("jobs per GPU: %v", perGPU)
	for where, n := range perGPU {
		assert.GreaterOrEqual(t, n, total/10, "%s served at least 10%% of the jobs", where)
	}
}

func TestScaleOutSurvivesAMachineDying(t *testing.T) {
	c := startCluster(t, func(int) []string { return nil })
	dead := c.machines[2]
	var killOnce sync.Once
	killedAt := -1
	const total = 150
	jobs := c.runJobs(t, total, 12, bothServices, func(done int) {
		if done >= total/3 {
			killOnce.Do(func() {
				killedAt = done
				dead.kill()
			})
		}
	})
	require.Positive(t, killedAt)

	// Every job ended with a completion or an error the client saw; none
	// was lost in silence (a prompt the dead machine had taken is reported
	// lost by the client, not waited on forever).
	var completed, failed int
	for _, j := range jobs {
		switch {
		case j.err == nil:
			completed++
		case errors.Is(j.err, loadgen.ErrPromptLost), isHTTPError(j.err):
			failed++
		default:
			t.Errorf("job %s (%s) ended in an unexpected way: %v", j.id, j.service, j.err)
		}
	}
	t.Logf("%d jobs: %d completed, %d failed visibly when machine 3 died after %d", total, completed, failed, killedAt)
	assert.GreaterOrEqual(t, completed, total-2*gpusPerMachine*2, "at most the jobs the dead machine held are lost")

	// None ran twice: a job that began on a surviving machine began once.
	perJob, _ := c.begun(t)
	for id, where := range perJob {
		alive := 0
		for _, w := range where {
			if !strings.HasPrefix(w, "machine3/") {
				alive++
			}
		}
		assert.LessOrEqual(t, alive, 1, "job %s began on %v", id, where)
	}
	// And every completed job began somewhere.
	for _, j := range jobs {
		if j.err == nil {
			assert.NotEmpty(t, perJob[j.id], "completed job %s never began", j.id)
		}
	}
	assert.Zero(t, c.overlaps(t))
}

// TestFullMachineSendsWorkElsewhereAndIsNotTakenForDead checks A1111's
// synchronous jobs, which nginx moves to another machine on a 503. (ComfyUI
// prompts stay on their machine for affinity: see central-lb.conf.)
func TestFullMachineSendsWorkElsewhereAndIsNotTakenForDead(t *testing.T) {
	// Machine 1's shims take one request in line at most; the others many.
	c := startCluster(t, func(i int) []string {
		if i == 1 {
			return []string{"--max-queue", "1"}
		}
		return nil
	})
	const total = 60
	jobs := c.runJobs(t, total, 30, []string{"a1111"}, nil)
	for _, j := range jobs {
		require.NoError(t, j.err, "job %s: a 503 from a full machine is retried elsewhere", j.id)
	}
	full := c.machines[0]
	refused := strings.Count(full.shimLogs(), "outcome=queue_full")
	t.Logf("machine 1 refused %d requests with 503", refused)
	assert.Positive(t, refused, "machine 1's line was full at times")

	// Busy is not dead: once the burst is over, machine 1 still gets work.
	_, before := c.begun(t)
	for _, j := range c.runJobs(t, 24, 1, []string{"a1111"}, nil) {
		require.NoError(t, j.err)
	}
	_, after := c.begun(t)
	got := after["machine1/gpu0"] + after["machine1/gpu1"] - before["machine1/gpu0"] - before["machine1/gpu1"]
	assert.Positive(t, got, "nginx still sends machine 1 work")
}

// isHTTPError reports whether err is an HTTP error status the client got.
func isHTTPError(err error) bool {
	var se *loadgen.StatusError
	return errors.As(err, &se)
}
