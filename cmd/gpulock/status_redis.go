package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/gateway"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"
)

// statusRedisTimeout bounds one read of the cluster's state.
const statusRedisTimeout = 5 * time.Second

// statusRedisFlags are the flags of `gpulock status` in cluster mode.
func statusRedisFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagRedis, Usage: "show the cluster in this Redis (cluster mode) instead of the lock directory, such as redis://10.0.0.5:6379/0", EnvVars: envVar(flagRedis)},
		&cli.StringFlag{Name: flagClient, Usage: "with --redis: list only this client's jobs in the line (with their places in the whole line); no env var, as GPULOCK_CLIENT is exec's"},
	}
}

// statusRedisText is the part of `gpulock status --help` about --redis.
const statusRedisText = `

With --redis URL (or GPULOCK_REDIS) it shows the cluster instead: every GPU
registered by a shim run with --redis (node, number, profiles, state, the job
it runs or who holds its lock locally, since when, the lease left of its
machine's registration) and the cluster's line (position, profile, client,
priority, waited), and the A1111 options set for the whole cluster (its
model), if any. --client ID lists only that client's jobs. --json prints
the same JSON as a gateway's /gpulock/status ({"gateway": {...}}, with
"profile" empty). A Redis that cannot be reached exits 69 (EX_UNAVAILABLE).
With GPULOCK_REDIS set, --redis= shows the lock directory as without it.`

// runStatusRedis is `gpulock status --redis URL`.
func (a *App) runStatusRedis(c *cli.Context) error {
	hint := "gpulock status --help"
	if c.IsSet(flagGPU) {
		return usageError(hint, "--gpu does not apply with --redis: the cluster is shown whole")
	}
	url := c.String(flagRedis)
	opt, err := redis.ParseURL(url)
	if err != nil {
		return usageError(hint, "--redis %q: want redis://[user:password@]host:port/db: %v", url, err)
	}
	where := fmt.Sprintf("%s db %d", opt.Addr, opt.DB) // never the password
	// go-redis logs each failed dial on stderr; the error below says it once.
	redis.SetLogger(quietRedisLog{})
	rdb, err := cluster.Dial(url)
	if err != nil {
		return usageError(hint, "%v", err)
	}
	defer rdb.Close()
	store := cluster.NewStore(rdb)
	read := func() error {
		ctx, cancel := context.WithTimeout(c.Context, statusRedisTimeout)
		defer cancel()
		st, err := gateway.ReadStatus(ctx, store, "", c.String(flagClient))
		if err != nil {
			return exitf(exitUnavailable, "cannot read the cluster at Redis %s: %v; check that Redis runs, and --redis (password, db)", where, err)
		}
		if c.Bool(flagJSON) {
			b, err := json.Marshal(st)
			if err != nil {
				return newExitError(exitSoftware, err.Error(), err)
			}
			_, _ = a.stdout.Write(append(b, '\n'))
			return nil
		}
		return a.printClusterText(st.Gateway.View, where)
	}
	if !c.Bool(flagWatch) {
		return read()
	}
	return a.watch(c.Context, read, c.Bool(flagJSON))
}

// gpuRow is one physical GPU of the cluster: its members (one shim per
// profile) folded into one row.
type gpuRow struct {
	node     string
	gpu      int
	members  []cluster.GPUView
	profiles []string
}

// stateRank orders the states a row shows: the busiest member's.
var stateRank = map[string]int{cluster.GPURunning: 5, cluster.GPUReserved: 4, cluster.GPUBusy: 3, cluster.GPUFree: 2, cluster.GPUIdle: 1}

// printClusterText prints the cluster as two tables: the GPUs, then the line.
func (a *App) printClusterText(v cluster.View, where string) error {
	var rows []*gpuRow
	byKey := map[string]*gpuRow{}
	for _, g := range v.GPUs {
		k := fmt.Sprintf("%s\x00%d", g.Node, g.GPU)
		r := byKey[k]
		if r == nil {
			r = &gpuRow{node: g.Node, gpu: g.GPU}
			byKey[k] = r
			rows = append(rows, r)
		}
		r.members = append(r.members, g)
		r.profiles = append(r.profiles, g.Profile)
	}
	slices.SortFunc(rows, func(x, y *gpuRow) int { return cmp.Or(cmp.Compare(x.node, y.node), cmp.Compare(x.gpu, y.gpu)) })
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "cluster at Redis %s: %d GPUs registered, %d jobs in line\n", where, len(rows), v.LineLength)
	if v.A1111Options != nil {
		fmt.Fprintf(w, "A1111 options set for the cluster: %s\n", printable(string(v.A1111Options)))
	}
	if len(rows) > 0 {
		fmt.Fprintln(w, "NODE\tGPU\tPROFILES\tSTATE\tJOB/HOLDER\tCLIENT\tFOR\tLEASE")
	}
	for _, r := range rows {
		top := r.members[0]
		for _, m := range r.members[1:] {
			if stateRank[m.State] > stateRank[top.State] {
				top = m
			}
		}
		state, what, client, since := top.State, "", top.JobClient, ""
		switch {
		case top.Job != "":
			what = top.Job
			if len(r.members) > 1 {
				state += " (" + top.Profile + ")"
			}
		case top.Holder != nil:
			what = top.Holder.Service
			if top.Holder.PID != 0 {
				what += fmt.Sprintf(" pid %d", top.Holder.PID)
			}
			if top.Holder.Host != "" {
				what += " on " + top.Holder.Host
			}
		}
		if top.Since != nil {
			since = seconds(time.Since(*top.Since).Seconds())
		}
		lease := slices.MinFunc(r.members, func(x, y cluster.GPUView) int { return cmp.Compare(x.LeaseSeconds, y.LeaseSeconds) }).LeaseSeconds
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%.1fs\n", cell(r.node), r.gpu, cell(strings.Join(r.profiles, ",")), state,
			cell(what), cell(client), cell(since), lease)
	}
	if len(v.Line) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "POSITION\tPROFILE\tCLIENT\tPRIORITY\tWAITED\tJOB")
	}
	for _, j := range v.Line {
		job := j.ID
		if j.Pin != "" {
			job += " (only " + j.Pin + ")"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", j.Position, cell(j.Profile), cell(j.Client), cell(j.Priority), seconds(j.WaitedSeconds), cell(job))
	}
	if v.LineLength > int64(len(v.Line)) && v.Client == "" {
		fmt.Fprintf(w, "... and %d more\n", v.LineLength-int64(len(v.Line)))
	}
	return flush(w)
}

// quietRedisLog drops go-redis's own log lines (a process-wide setting, so
// only for the one-shot `gpulock status`).
type quietRedisLog struct{}

// Printf drops a log line.
func (quietRedisLog) Printf(context.Context, string, ...any) {}
