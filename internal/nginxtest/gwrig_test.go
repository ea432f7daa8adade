package nginxtest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gwcluster "github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/gpulock/gpulock/internal/simgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gwLease is the lease of every shim and gateway of a gateway rig: short,
// so that a death is seen within the test's time.
const gwLease = time.Second

// gwRig is a cluster in processes: a persistent redis-server, one-GPU
// machines (a fake ComfyUI and a fake A1111, each behind a `gpulock shim
// --redis` process, sharing the machine's lock directory and GPU), two
// gateway hosts (a `gpulock gateway` process per profile each) and nginx
// in front of the gateways, retrying the other one on a connect error.
// When a test fails, the ends of the logs are in its output, and with
// GPULOCK_CHAOS_LOGS=dir every process's whole log is written to dir.
type gwRig struct {
	redis    *redistest.Server
	store    *gwcluster.Store // the test's own look at Redis
	machines []*gwMachine
	gateways []*gwHost
	nginx    *proc
	// nginxDir is nginx's prefix, where its error.log is.
	nginxDir string
	// base maps a profile to nginx's URL for it.
	base map[string]string
}

// gwMachine is one simulated one-GPU machine of a gwRig.
type gwMachine struct {
	name   string
	simDir string
	procs  []*proc
	// shimURL maps a profile to the URL its shim advertises.
	shimURL map[string]string
}

// gwHost is one gateway host: a gateway process per profile.
type gwHost struct {
	name  string
	procs map[string]*proc
	port  map[string]int
}

var gwProfiles = []string{"comfyui", "a1111"}

// startGWRig starts Redis, n machines, two gateway hosts and nginx.
func startGWRig(t *testing.T, n int) *gwRig {
	t.Helper()
	r := &gwRig{redis: redistest.StartPersistent(t), base: map[string]string{}}
	rdb, err := gwcluster.Dial(r.redis.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	r.store = gwcluster.NewStore(rdb)
	for i := range n {
		r.machines = append(r.machines, r.startMachine(t, fmt.Sprintf("m%d", i+1)))
	}
	for i := range 2 {
		r.gateways = append(r.gateways, r.startGateways(t, fmt.Sprintf("g%d", i+1)))
	}
	r.startNginx(t)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if dir := os.Getenv("GPULOCK_CHAOS_LOGS"); dir != "" {
			for _, g := range r.gateways {
				for p, pr := range g.procs {
					_ = os.WriteFile(filepath.Join(dir, g.name+"-"+p+".log"), []byte(pr.logText()), 0o644)
				}
			}
			for _, m := range r.machines {
				for _, pr := range m.procs {
					_ = os.WriteFile(filepath.Join(dir, m.name+"-"+filepath.Base(pr.log)), []byte(pr.logText()), 0o644)
				}
			}
		}
		for _, g := range r.gateways {
			for p, pr := range g.procs {
				t.Logf("gateway %s/%s logged:\n%s", g.name, p, tail(pr.logText(), 4000))
			}
		}
		for _, m := range r.machines {
			for _, pr := range m.procs {
				t.Logf("%s's %s logged:\n%s", m.name, filepath.Base(pr.log), tail(pr.logText(), 2000))
			}
		}
		if b, err := os.ReadFile(filepath.Join(r.nginxDir, "error.log")); err == nil {
			t.Logf("nginx logged:\n%s", tail(string(b), 4000))
		}
	})
	r.waitFree(t, n)
	return r
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// startMachine starts machine name: per profile a fake backend and its
// cluster shim.
func (r *gwRig) startMachine(t *testing.T, name string) *gwMachine {
	t.Helper()
	dir := t.TempDir()
	m := &gwMachine{name: name, simDir: filepath.Join(dir, "sim"), shimURL: map[string]string{}}
	locks := filepath.Join(dir, "locks")
	require.NoError(t, os.MkdirAll(locks, 0o755))
	for _, kind := range gwProfiles {
		backend := freePort(t)
		fake := startProc(t, dir, kind+"-backend", gpulockBin, "fake",
			"--listen", "127.0.0.1:"+strconv.Itoa(backend), "--sim-dir", m.simDir, "--gpu", "0",
			"--step", step.String(), "--default-steps", "4", kind)
		waitListening(t, backend, fake)
		port := freePort(t)
		m.shimURL[kind] = "http://127.0.0.1:" + strconv.Itoa(port)
		shim := startProc(t, dir, kind+"-shim", gpulockBin, "shim",
			"--listen", "127.0.0.1:"+strconv.Itoa(port), "--upstream", "http://127.0.0.1:"+strconv.Itoa(backend),
			"--gpu", "0", "--profile", kind, "--lock-dir", locks,
			"--redis", r.redis.URL(), "--node", name, "--advertise", m.shimURL[kind], "--lease", gwLease.String())
		waitListening(t, port, shim)
		m.procs = append(m.procs, fake, shim)
	}
	return m
}

// kill SIGKILLs every process of the machine at once, as a power cut would.
func (m *gwMachine) kill() {
	for _, p := range m.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range m.procs {
		<-p.done
	}
}

// gpu opens the machine's simulated GPU.
func (m *gwMachine) gpu(t *testing.T) *simgpu.GPU {
	t.Helper()
	g, err := simgpu.Open(m.simDir, 0, simgpu.Options{})
	require.NoError(t, err)
	return g
}

// startGateways starts gateway host name's gateway processes.
func (r *gwRig) startGateways(t *testing.T, name string) *gwHost {
	t.Helper()
	h := &gwHost{name: name, procs: map[string]*proc{}, port: map[string]int{}}
	dir := t.TempDir()
	for _, kind := range gwProfiles {
		port := freePort(t)
		p := startProc(t, dir, name+"-"+kind, gpulockBin, "gateway", "--listen", "127.0.0.1:"+strconv.Itoa(port),
			"--profile", kind, "--redis", r.redis.URL(), "--lease", gwLease.String())
		waitListening(t, port, p)
		h.procs[kind], h.port[kind] = p, port
	}
	return h
}

// kill SIGKILLs the host's gateways.
func (h *gwHost) kill() {
	for _, p := range h.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range h.procs {
		<-p.done
	}
}

// gwNginxConf is nginx's configuration in front of the gateways: %[1]s is
// the prefix, %[2]s the upstream blocks, %[3]s the server blocks, %[4]s the
// user line. nginx's
// own 502 (a gateway that died with the request) is a JSON error too, so a
// client can tell it from the gateway's answers.
const gwNginxConf = `%[4]s
daemon off;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    map $http_upgrade $gpulock_connection { default upgrade; "" ""; }
%[2]s%[3]s}
`

// gwServer is one server block: %[1]d the port, %[2]s the upstream, %[3]s
// the prefix.
const gwServer = `    server {
        listen 127.0.0.1:%[1]d;
        location / {
            proxy_pass http://%[2]s;
            include %[3]s/gpulock-proxy.conf;
            proxy_next_upstream error;   # a dead gateway: the other one, before the request was sent
        }
        error_page 502 504 = @gateway_failed;
        location @gateway_failed {
            default_type application/json;
            return 502 '{"error":{"type":"gateway_failed","message":"nginx: the gateway failed with the request; it may have run","source":"nginx"}}';
        }
    }
`

// startNginx writes the configuration and runs nginx.
func (r *gwRig) startNginx(t *testing.T) {
	t.Helper()
	bin := nginxPath(t)
	prefix := t.TempDir()
	r.nginxDir = prefix
	shared, err := os.ReadFile(filepath.Join("..", "..", "examples", "nginx", "gpulock-proxy.conf"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(prefix, "gpulock-proxy.conf"), shared, 0o644))
	var ups, servers strings.Builder
	listens := map[string]int{}
	for _, kind := range gwProfiles {
		fmt.Fprintf(&ups, "    upstream gateways_%s {\n", kind)
		for _, g := range r.gateways {
			fmt.Fprintf(&ups, "        server 127.0.0.1:%d max_fails=1 fail_timeout=5s;\n", g.port[kind])
		}
		ups.WriteString("    }\n")
		listens[kind] = freePort(t)
		fmt.Fprintf(&servers, gwServer, listens[kind], "gateways_"+kind, prefix)
		r.base[kind] = "http://127.0.0.1:" + strconv.Itoa(listens[kind])
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must write the temp directories under the test's prefix
	}
	mainPath := filepath.Join(prefix, "nginx.conf")
	require.NoError(t, os.WriteFile(mainPath, fmt.Appendf(nil, gwNginxConf, prefix, ups.String(), servers.String(), user), 0o644))
	out, err := exec.Command(bin, "-t", "-p", prefix, "-c", mainPath).CombinedOutput()
	require.NoError(t, err, "nginx -t:\n%s", out)
	r.nginx = startProc(t, prefix, "nginx", bin, "-p", prefix, "-c", mainPath)
	for _, port := range listens {
		waitListening(t, port, r.nginx)
	}
}

// waitFree waits until n GPUs of every profile are free in Redis.
func (r *gwRig) waitFree(t *testing.T, n int) {
	t.Helper()
	for _, kind := range gwProfiles {
		waitForCond(t, fmt.Sprintf("%d free %s GPUs in Redis", n, kind), func() bool {
			got, err := r.store.FreeCount(context.Background(), kind)
			return err == nil && got == int64(n)
		})
	}
}

// live reports whether machine m's shims of every profile are registered.
func (r *gwRig) live(m *gwMachine) bool {
	for _, kind := range gwProfiles {
		urls, err := r.store.LiveURLs(context.Background(), kind)
		if err != nil || !slices.Contains(urls, m.shimURL[kind]) {
			return false
		}
	}
	return true
}

// waitGatewaysRead waits until each gateway of hosts reads Redis again
// (its /gpulock/status answers): go-redis dials a Redis it could not reach
// once a second.
func (r *gwRig) waitGatewaysRead(t *testing.T, hosts []*gwHost) {
	t.Helper()
	for _, h := range hosts {
		for kind, port := range h.port {
			url := "http://127.0.0.1:" + strconv.Itoa(port) + "/gpulock/status"
			waitForCond(t, "gateway "+h.name+"/"+kind+" reading Redis", func() bool {
				resp, err := http.Get(url)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		}
	}
}

// jobsLeft counts the jobs Redis still has (waiting, matched or running)
// and the held requests it still tracks; -1 when Redis cannot say.
func (r *gwRig) jobsLeft() int {
	ctx := context.Background()
	keys, err := r.store.Client().Keys(ctx, "gpulock:job:*").Result()
	if err != nil {
		return -1
	}
	held, err := r.store.Client().HLen(ctx, "gpulock:heldby").Result()
	if err != nil {
		return -1
	}
	return len(keys) + int(held)
}

// waitNoJobLeft waits until jobsLeft is 0, and fails with what is left.
func (r *gwRig) waitNoJobLeft(t *testing.T) {
	t.Helper()
	if !assert.Eventually(t, func() bool { return r.jobsLeft() == 0 }, eventTimeout, pollEvery, "no job left in Redis") {
		t.Fatalf("left in Redis: %s", r.jobsReport())
	}
}

// jobsReport says what jobsLeft counts, for a failure's message.
func (r *gwRig) jobsReport() string {
	ctx := context.Background()
	var b strings.Builder
	keys, _ := r.store.Client().Keys(ctx, "gpulock:job:*").Result()
	for _, k := range keys {
		v, _ := r.store.Client().HGetAll(ctx, k).Result()
		fmt.Fprintf(&b, "%s %v; ", k, v)
	}
	held, _ := r.store.Client().HGetAll(ctx, "gpulock:heldby").Result()
	fmt.Fprintf(&b, "held: %v", held)
	// The prompts not done, with their owners, and the gateways' leases:
	// who should have dispatched what is left.
	prompts, _ := r.store.Client().Keys(ctx, "gpulock:cprompt:*").Result()
	for _, k := range prompts {
		v, _ := r.store.Client().HMGet(ctx, k, "state", "owner", "job", "gpu").Result()
		if st, _ := v[0].(string); st != "done" {
			fmt.Fprintf(&b, "; %s state=%v owner=%v job=%v gpu=%v", k, v[0], v[1], v[2], v[3])
		}
	}
	active, _ := r.store.Client().ZRange(ctx, "gpulock:cactive", 0, -1).Result()
	gws, _ := r.store.Client().Keys(ctx, "gpulock:gw:*").Result()
	fmt.Fprintf(&b, "; active prompts %v; gateway leases %v", active, gws)
	return b.String()
}
