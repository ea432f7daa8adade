//go:build linux

package gpulock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"
)

// The benchmarks' helper processes: the test binary re-executed with
// envBenchRole naming what the child does. init runs the role and exits
// before TestMain, so these roles need nothing from child_test.go.
const (
	envBenchRole  = "GPULOCK_BENCH_ROLE"
	envBenchDir   = "GPULOCK_BENCH_DIR"
	envBenchKind  = "GPULOCK_BENCH_KIND"
	envBenchTurns = "GPULOCK_BENCH_TURNS"
	envBenchTotal = "GPULOCK_BENCH_TOTAL"
	envBenchOut   = "GPULOCK_BENCH_OUT"

	// benchTimeout bounds every wait for the other process in a benchmark.
	benchTimeout = 30 * time.Second
	// gofrsRetry is the retry delay given to gofrs TryLockContext.
	gofrsRetry = 10 * time.Millisecond
	// benchRawLock is the lock file of the flock(2) and gofrs variants.
	benchRawLock = "raw.lock"
	// benchShmFile is the file both players map to pass release timestamps.
	benchShmFile = "shm"
)

func init() {
	if role := os.Getenv(envBenchRole); role != "" {
		os.Exit(runBenchRole(role))
	}
}

func runBenchRole(role string) int {
	var err error
	switch role {
	case "handoff": // the second player of BenchmarkHandoff
		err = handoffChild()
	case "wait": // one waiter of BenchmarkWaitingCPU: acquire, release, exit
		err = waitChild()
	default:
		err = fmt.Errorf("unknown bench role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	return 0
}

func waitChild() error {
	l, err := New(0, WithDir(os.Getenv(envBenchDir)), WithService("bench-waiter"))
	if err != nil {
		return err
	}
	h, err := l.Acquire(context.Background())
	if err != nil {
		return err
	}
	return h.Release()
}

func handoffChild() error {
	dir := os.Getenv(envBenchDir)
	turns, err1 := strconv.Atoi(os.Getenv(envBenchTurns))
	total, err2 := strconv.Atoi(os.Getenv(envBenchTotal))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	lk, err := newHandoffLock(os.Getenv(envBenchKind), dir)
	if err != nil {
		return err
	}
	shm, err := openBenchShm(filepath.Join(dir, benchShmFile))
	if err != nil {
		return err
	}
	p := &handoffPlayer{lk: lk, shm: shm, peer: benchPeer{r: os.Stdin, w: os.Stdout}, turns: turns, total: total}
	lat, err := p.play()
	if err != nil {
		return err
	}
	var sb strings.Builder
	for _, d := range lat {
		sb.WriteString(strconv.FormatInt(int64(d), 10))
		sb.WriteByte('\n')
	}
	return os.WriteFile(os.Getenv(envBenchOut), []byte(sb.String()), 0o644)
}

// handoffLock is one of the locks compared by BenchmarkHandoff.
type handoffLock struct {
	acquire func() error
	release func() error
	// barging: the releaser could take the lock straight back, so it waits
	// for the other's "got it" before asking again.
	barging bool
	// polls: the waiter is not blocked in the kernel, so it says "waiting"
	// before it starts, and the holder releases at a random point of its
	// retry cycle (see handoffPlayer.play).
	polls bool
	// path is the lock file, whose blocked flock(2) waiters the holder
	// looks for in /proc/locks when polls is false.
	path string
}

func newHandoffLock(kind, dir string) (*handoffLock, error) {
	switch kind {
	case "gpulock":
		l, err := New(0, WithDir(dir), WithService("bench"))
		if err != nil {
			return nil, err
		}
		var h *Handle
		return &handoffLock{
			path: l.Path(),
			acquire: func() (err error) {
				h, err = l.Acquire(context.Background())
				return err
			},
			release: func() error { return h.Release() },
		}, nil
	case "flock":
		path := filepath.Join(dir, benchRawLock)
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o666)
		if err != nil {
			return nil, err
		}
		return &handoffLock{
			path:    path,
			barging: true,
			acquire: func() error { return retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) }) },
			release: func() error { return unix.Flock(fd, unix.LOCK_UN) },
		}, nil
	case "gofrs":
		path := filepath.Join(dir, benchRawLock)
		f := flock.New(path)
		return &handoffLock{
			path:    path,
			barging: true,
			polls:   true,
			acquire: func() error {
				ok, err := f.TryLockContext(context.Background(), gofrsRetry)
				if err == nil && !ok {
					err = errors.New("gofrs TryLockContext: not locked")
				}
				return err
			},
			release: f.Unlock,
		}, nil
	}
	return nil, fmt.Errorf("unknown handoff lock %q", kind)
}

// handoffPlayer is one of the two processes of BenchmarkHandoff. They take
// the lock in turns, total times in all; the parent starts (acquisition 0,
// not timed) and takes the even acquisitions, the child the odd ones. For
// acquisition j >= 1 the previous holder stores, in shared memory, the
// CLOCK_MONOTONIC time at which it called release and then j; the new holder
// reads the clock as soon as it holds the lock and subtracts. Before
// releasing, the holder makes sure the other is already waiting, so every
// sample is a release to a waiter, never a lock taken while free.
type handoffPlayer struct {
	lk      *handoffLock
	shm     *benchShm
	peer    benchPeer
	starter bool
	turns   int // acquisitions by this player
	total   int // acquisitions by both
}

func (p *handoffPlayer) play() ([]time.Duration, error) {
	lat := make([]time.Duration, 0, p.turns)
	if !p.starter {
		if err := p.peer.recv(); err != nil { // "go": the starter holds the lock
			return nil, err
		}
	}
	for t := range p.turns {
		j := 2 * t
		if !p.starter {
			j++
		}
		if p.lk.polls && j > 0 {
			if err := p.peer.send(); err != nil { // "waiting"
				return nil, err
			}
		}
		if err := p.lk.acquire(); err != nil {
			return nil, err
		}
		got := monoNow()
		if j == 0 || (p.lk.barging && j > 0) {
			if err := p.peer.send(); err != nil { // "go", or "got it"
				return nil, err
			}
		}
		if j > 0 {
			released, err := p.shm.await(uint64(j))
			if err != nil {
				return nil, err
			}
			lat = append(lat, time.Duration(got-released))
		}
		next := j+1 < p.total
		if next {
			if err := p.awaitWaiter(); err != nil {
				return nil, err
			}
			if p.lk.polls {
				// Release at a random point of the waiter's retry cycle, as
				// a holder that knows nothing of the waiter does. This is
				// the modelled work, not a synchronisation.
				time.Sleep(rand.N(gofrsRetry))
			}
		}
		start := monoNow()
		if err := p.lk.release(); err != nil {
			return nil, err
		}
		p.shm.publish(uint64(j+1), start)
		if p.lk.barging && next {
			if err := p.peer.recv(); err != nil { // "got it"
				return nil, err
			}
		}
	}
	return lat, nil
}

// awaitWaiter returns once the other player waits for the lock: it said so
// (a polling lock), or /proc/locks shows it blocked in flock(2) on the file.
func (p *handoffPlayer) awaitWaiter() error {
	if p.lk.polls {
		return p.peer.recv()
	}
	ino, err := benchInode(p.lk.path)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(benchTimeout)
	for {
		blocked, err := flockBlocked()
		if err != nil {
			return err
		}
		if blocked[ino] > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nobody blocked on %s within %v", p.lk.path, benchTimeout)
		}
		runtime.Gosched()
	}
}

// benchInode returns the inode number of the file at path.
func benchInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// flockBlocked reads /proc/locks and counts the flock(2) requests blocked on
// each inode and by each pid ("1: -> FLOCK ADVISORY WRITE <pid> <dev>:<ino> 0 EOF").
func flockBlocked() (byInode map[uint64]int, err error) {
	byInode, _, err = flockBlockedBy()
	return byInode, err
}

func flockBlockedBy() (byInode, byPID map[uint64]int, err error) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	byInode, byPID = map[uint64]int{}, map[uint64]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		i := slices.Index(fields, "->")
		if i < 0 || len(fields) < i+6 || fields[i+1] != "FLOCK" {
			continue
		}
		pid, err1 := strconv.ParseUint(fields[i+4], 10, 64)
		id := fields[i+5]
		ino, err2 := strconv.ParseUint(id[strings.LastIndexByte(id, ':')+1:], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		byInode[ino]++
		byPID[pid]++
	}
	return byInode, byPID, sc.Err()
}

// monoNow reads CLOCK_MONOTONIC, which every process on the machine shares.
func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// benchShm is a small file both players map: word 0 is the number of the
// acquisition that the last release was for, word 1 the time of that release.
type benchShm struct{ mem []byte }

func openBenchShm(path string) (*benchShm, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(16); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &benchShm{mem: mem}, nil
}

func (s *benchShm) word(i int) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[8*i])) }

func (s *benchShm) publish(seq uint64, at int64) {
	atomic.StoreUint64(s.word(1), uint64(at))
	atomic.StoreUint64(s.word(0), seq)
}

// await spins until the release for acquisition seq is published (the
// releaser publishes right after its release returns) and returns its time.
func (s *benchShm) await(seq uint64) (int64, error) {
	deadline := time.Now().Add(benchTimeout)
	for i := 0; ; i++ {
		if atomic.LoadUint64(s.word(0)) == seq {
			return int64(atomic.LoadUint64(s.word(1))), nil
		}
		if i%1024 == 0 && time.Now().After(deadline) {
			return 0, fmt.Errorf("release %d not published within %v", seq, benchTimeout)
		}
		runtime.Gosched()
	}
}

func (s *benchShm) close() { _ = unix.Munmap(s.mem) }

// benchPeer carries one-byte notices between the two players.
type benchPeer struct {
	r io.Reader
	w io.Writer
}

func (p benchPeer) send() error {
	_, err := p.w.Write([]byte{'.'})
	return err
}

func (p benchPeer) recv() error {
	if f, ok := p.r.(*os.File); ok {
		_ = f.SetReadDeadline(time.Now().Add(benchTimeout)) // fails harmlessly on a blocking stdin
	}
	var b [1]byte
	_, err := io.ReadFull(p.r, b[:])
	if err != nil {
		return fmt.Errorf("waiting for the other player: %w", err)
	}
	return nil
}

// benchChild is a helper process started by a benchmark.
type benchChild struct {
	cmd  *exec.Cmd
	in   *os.File // the child's stdin, written by us
	out  *os.File // the child's stdout, read by us
	done chan error
}

// startBenchChild re-executes the test binary in role with env added. The
// child is killed and reaped when the benchmark ends.
func startBenchChild(b *testing.B, role string, env ...string) *benchChild {
	b.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0", envBenchRole+"="+role), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		b.Fatal(err)
	}
	c := &benchChild{cmd: cmd, in: inW, out: outR, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		c.in.Close()
		c.out.Close()
	})
	return c
}

// wait waits for the child to exit and returns its error.
func (c *benchChild) wait() error {
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		return err
	case <-time.After(benchTimeout):
		return fmt.Errorf("bench child did not exit within %v", benchTimeout)
	}
}

// benchCPU sums the CPU time the processes' threads have run, from
// /proc/PID/task/*/schedstat (nanoseconds on the CPU is the first field).
func benchCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "schedstat"))
		if err != nil {
			return 0, err
		}
		if len(tasks) == 0 {
			return 0, fmt.Errorf("no threads for pid %d", pid)
		}
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				continue // the thread ended
			}
			ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
			if err != nil {
				return 0, err
			}
			total += time.Duration(ns)
		}
	}
	return total, nil
}
