package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/urfave/cli/v2"
)

const (
	flagJSON  = "json"
	flagWatch = "watch"
)

// watchInterval is how often `gpulock status --watch` redraws.
const watchInterval = time.Second

func (a *App) statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show who holds and who waits for each GPU",
		UsageText: "gpulock status [--json] [--watch] [--gpu SET | --redis URL [--client ID]]",
		Description: `Shows every GPU lock in the lock directory: free or held, the holder
(service, pid, user, host, held for, command) and the waiters in line with how
long each has waited. Dead holders and waiters are not shown.

--json prints a JSON array with one object per GPU; this schema is stable
(it is also what the shim's HTTP status serves):

  [{"name": "gpu0", "gpu": 0, "path": "/tmp/gpu0.lock", "held": true,
    "holder": {"pid": 4242, "child_pid": 4250, "host": "box", "service": "comfyui",
               "command": "python main.py", "since": "2025-01-02T15:04:05Z",
               "held_seconds": 192.5},
    "waiters": [{"pid": 4300, "host": "box", "service": "a1111", "command": "./webui.sh",
                 "since": "...", "position": 1, "waited_seconds": 60.1,
                 "client": "uid:1000", "priority": "normal"}]}]

"holder" is null when the GPU is free, or when the holder left no description
(util-linux flock(1), say): "held" is then still true. "child_pid" and
"command" may be absent. "owner" (on the GPU and on each waiter, where the
kernel can say) is the kernel's view, which no user can forge: {"pid", "uid",
"user", "comm"}, "mismatch": true when the file's text names another pid, and
"gone": true with "held_by": [{"pid", "uid", "user", "comm"}] for an orphan (a
lock whose taker has exited while processes that inherited it hold on). PID
and USER in the table are the owner's. "error" is set on a GPU whose lock file
cannot be read; the other GPUs are still listed, and status exits with the
error's code. Text from the files is printed with control characters escaped. --watch redraws every second until interrupted (with
--json: one array per line).` + statusRedisText,
		HideHelpCommand: true,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: flagJSON, Usage: "print JSON (see the description for the schema)", EnvVars: envVar(flagJSON)},
			&cli.BoolFlag{Name: flagWatch, Aliases: []string{"w"}, Usage: "redraw every second until interrupted", EnvVars: envVar(flagWatch)},
			&cli.StringFlag{Name: flagGPU, Aliases: []string{"g"}, Usage: "show only these GPUs (0, 0,2, 0-3), even if their lock files do not exist yet", EnvVars: envVar(flagGPU)},
		}, statusRedisFlags()...), // status_redis.go
		Action: a.runStatus,
	}
}

func (a *App) runStatus(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("gpulock status --help", "unexpected argument %q", c.Args().First())
	}
	if c.String(flagRedis) != "" {
		return a.runStatusRedis(c) // status_redis.go
	}
	dir := lockDir(c)
	var gpus []int
	if s := c.String(flagGPU); s != "" {
		var err error
		if gpus, err = gpulock.ParseGPUSet(s); err != nil {
			return usageError("gpulock status --help", "--gpu: %s", libText(err))
		}
	}
	show := a.printStatusText
	if c.Bool(flagJSON) {
		show = a.printStatusJSON
	}
	read := func() error {
		list, err := readStatuses(dir, gpus)
		if list == nil && err != nil {
			return err
		}
		if serr := show(list, dir); serr != nil {
			return serr
		}
		return err // after the complete list: a bad lock file ends with its code
	}
	if !c.Bool(flagWatch) {
		return read()
	}
	return a.watch(c.Context, read, c.Bool(flagJSON))
}

// readStatuses reads the locks of gpus in dir, or every GPU lock there. A
// lock that cannot be read is listed with its Error, and the error (the
// first, with its exit code) is returned with the complete list.
func readStatuses(dir string, gpus []int) ([]gpulock.Status, error) {
	if err := checkLockDir(dir); err != nil {
		return nil, err
	}
	if gpus == nil {
		list, err := gpulock.ListStatus(dir)
		if err != nil {
			return list, lockError(firstError(err))
		}
		return list, nil
	}
	list := make([]gpulock.Status, 0, len(gpus))
	var first error
	for _, g := range gpus {
		l, err := gpulock.New(g, gpulock.WithDir(dir))
		if err != nil {
			return nil, usageError("gpulock status --help", "%s", libText(err))
		}
		st, err := l.Status()
		if err != nil {
			st.Error = err.Error()
			if first == nil {
				first = err
			}
		}
		list = append(list, st)
	}
	if first != nil {
		return list, lockError(first)
	}
	return list, nil
}

// firstError is the first of errors joined with errors.Join, or err.
func firstError(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		return j.Unwrap()[0]
	}
	return err
}

// watch calls show every second until SIGINT or SIGTERM, then returns nil.
// On a terminal each text snapshot replaces the last.
func (a *App) watch(ctx context.Context, show func() error, jsonOut bool) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fd := fdOf(a.stdout)
	redraw := !jsonOut && fd >= 0 && isTerminal(fd)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for first := true; ; first = false {
		switch {
		case redraw:
			fmt.Fprint(a.stdout, "\x1b[H\x1b[2J") // home, clear screen
		case !jsonOut && !first:
			fmt.Fprintln(a.stdout)
		}
		if err := show(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// printStatusJSON prints the list as one JSON array (one line, so that
// --watch gives JSON lines).
func (a *App) printStatusJSON(list []gpulock.Status, _ string) error {
	if list == nil {
		list = []gpulock.Status{}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return newExitError(exitSoftware, err.Error(), err)
	}
	_, _ = a.stdout.Write(append(b, '\n'))
	return nil
}

// printStatusText prints a table: one row per GPU, then one per waiter.
// PID and USER are the kernel's (see gpulock.Owner) where it says; a pid
// that the file's text contradicts is marked "(file says N)".
func (a *App) printStatusText(list []gpulock.Status, dir string) error {
	if len(list) == 0 {
		fmt.Fprintf(a.stdout, "no GPU locks in %s\n", dir)
		return nil
	}
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "GPU\tSTATE\tSERVICE\tPID\tUSER\tHOST\tFOR\tCOMMAND")
	for _, st := range list {
		gpu := st.Name
		if st.GPU != nil {
			gpu = strconv.Itoa(*st.GPU)
		}
		o, h := st.Owner, st.Holder
		switch {
		case st.Error != "":
			fmt.Fprintf(w, "%s\terror\t\t\t\t\t\t%s\n", gpu, printable(strings.ReplaceAll(st.Error, "gpulock: ", "")))
		case !st.Held:
			fmt.Fprintf(w, "%s\tfree\t\t\t\t\t\t\n", gpu)
		case o != nil && o.Gone:
			service, since := "?", ""
			if h != nil {
				service, since = h.Service, seconds(h.HeldSeconds)
			}
			pid, user := "?", ""
			if len(o.HeldBy) > 0 {
				pid, user = strconv.Itoa(o.HeldBy[0].PID), cmp.Or(o.HeldBy[0].User, strconv.Itoa(o.HeldBy[0].UID))
			}
			fmt.Fprintf(w, "%s\torphan\t%s\t%s\t%s\t\t%s\t%s\n", gpu, cell(service), pid, cell(user), cell(since), orphanText(o))
		case h == nil:
			comm := ""
			if o != nil {
				comm = o.Comm
			}
			fmt.Fprintf(w, "%s\theld\t?\t%s\t%s\t\t\t(no description: flock(1)?) %s\n", gpu, ownerPID(o, 0), cell(ownerUser(o)), printable(comm))
		default:
			pid := ownerPID(o, h.PID)
			if h.ChildPID != 0 {
				pid += "," + strconv.Itoa(h.ChildPID)
			}
			fmt.Fprintf(w, "%s\theld\t%s\t%s\t%s\t%s\t%s\t%s\n", gpu, cell(h.Service), pid, cell(ownerUser(o)), cell(h.Host), seconds(h.HeldSeconds), cell(h.Command))
		}
		for _, wt := range st.Waiters {
			fmt.Fprintf(w, "\twaiting %d\t%s\t%s\t%s\t%s\t%s\t%s%s\n", wt.Position, cell(wt.Service), ownerPID(wt.Owner, wt.PID), cell(ownerUser(wt.Owner)), cell(wt.Host), seconds(wt.WaitedSeconds), cell(wt.Command), turnNote(wt))
		}
	}
	return flush(w)
}

func flush(w *tabwriter.Writer) error {
	if err := w.Flush(); err != nil {
		return newExitError(exitIOErr, err.Error(), err)
	}
	return nil
}

// turnNote tells a waiter's client and level, when its ticket names them.
func turnNote(wt gpulock.WaiterStatus) string {
	if wt.Priority == "normal" && strings.HasPrefix(wt.Client, "uid:") || wt.Client == "" && wt.Priority == "" {
		return "" // the defaults: the user's own client, at normal level
	}
	return fmt.Sprintf("  [client %s, %s]", cell(wt.Client), cell(wt.Priority))
}

// cell is a table cell: "-" when empty, escaped when it holds anything
// but printable characters (so also never a tab or a newline).
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}
