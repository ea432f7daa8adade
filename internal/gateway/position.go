package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/statuspage"
)

// HeaderPosition is set on a 503 of a job that waited (queue_timeout): its
// place in the cluster's line when it gave up, 1 for the next; on a
// queue_full it is where it would have gone (the line's length + 1).
const HeaderPosition = "X-GPULock-Position"

// HeaderLineLength is set beside HeaderPosition: how many jobs waited.
const HeaderLineLength = "X-GPULock-Line-Length"

// QueryClient filters /gpulock/status's line by client (the name a job's
// turn goes by: a ComfyUI client_id, X-GPULock-Client, else
// "addr:<address>").
const QueryClient = "client"

// placeError is a job's wait that ended without a GPU, with its place in
// line at that moment.
type placeError struct {
	err      error
	position int
	length   int64
}

func (e *placeError) Error() string {
	return fmt.Sprintf("%v (place %d of %d in line)", e.err, e.position, e.length)
}

func (e *placeError) Unwrap() error { return e.err }

// leftLine is the error of a wait that ctx ended: ctx's cause, with the
// job's place in line read just before it left (bounded by redisBound).
func (g *Gateway) leftLine(ctx context.Context, id string) error {
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(cause, context.Canceled) {
		return ctx.Err()
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
	defer cancel()
	pos, length, err := g.cfg.Store.Position(pctx, id)
	if err != nil {
		return cause
	}
	return &placeError{err: cause, position: pos, length: length}
}

// refusePlace answers a job refused with its place in line (queue_timeout,
// queue_full) and reports whether it did.
func (g *Gateway) refusePlace(w http.ResponseWriter, err error) bool {
	var pe *placeError
	switch {
	case errors.As(err, &pe) && errors.Is(err, errQueueTimeout):
		writeUnavailablePlace(w, g.cfg.RetryAfter, "queue_timeout",
			fmt.Sprintf("gpulock: waited %s without a GPU, at place %d of %d in the cluster's line; nothing was run, try again later",
				g.cfg.QueueTimeout, pe.position, pe.length), pe.position, pe.length)
	case errors.Is(err, cluster.ErrQueueFull):
		ctx, cancel := context.WithTimeout(g.ctx, redisBound)
		defer cancel()
		_, length, perr := g.cfg.Store.Position(ctx, "")
		if perr != nil {
			return false
		}
		writeUnavailablePlace(w, g.cfg.RetryAfter, "queue_full",
			fmt.Sprintf("gpulock: %d jobs already wait in the cluster (at most %d); nothing was run, try again later", length, g.cfg.MaxQueue),
			int(length)+1, length)
	default:
		return false
	}
	g.cfg.Logger.Warn("job refused", "err", err)
	return true
}

// writeUnavailablePlace is writeUnavailable with the job's place: the
// headers, and "position" and "line_length" in the JSON error.
func writeUnavailablePlace(w http.ResponseWriter, retryAfter time.Duration, typ, message string, position int, length int64) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	w.Header().Set(HeaderPosition, strconv.Itoa(position))
	w.Header().Set(HeaderLineLength, strconv.FormatInt(length, 10))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"type": typ, "message": message, "source": "gpulock", "position": position, "line_length": length,
	}})
}

// ReadStatus reads the cluster's state as /gpulock/status shows it to a
// caller on the gateway's machine (URLs not masked), for `gpulock status
// --redis`: profile is "" there, as it speaks for no gateway, and Recent
// is empty (each gateway keeps its own). client, when set, filters the
// line to that client's jobs.
func ReadStatus(ctx context.Context, st *cluster.Store, profile, client string) (Status, error) {
	v, err := st.ViewClient(ctx, client)
	if err != nil {
		return Status{}, err
	}
	if v.GPUs == nil {
		v.GPUs = []cluster.GPUView{}
	}
	if v.Line == nil {
		v.Line = []cluster.JobView{}
	}
	return Status{Gateway: GatewayStatus{Profile: profile, Detail: "full", View: v, Recent: []statuspage.Finished{}}}, nil
}
