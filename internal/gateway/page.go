package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/statuspage"
)

// PathStatus is the gateway's status as JSON: what its page (/gpulock/,
// the shim's page fed by a second data model) shows.
const PathStatus = "/gpulock/status"

// maskedURL stands for a shim's advertise URL shown to a caller that is not
// on the gateway's machine (statuspage.LoopbackCaller, the shim's rule).
const maskedURL = "(hidden)"

// viewTimeout bounds one read of the cluster's state for the page.
const viewTimeout = 2 * time.Second

// Status is the JSON of /gpulock/status on a gateway, and what every event
// of its page carries. The page tells it from a shim's by its Gateway field.
type Status struct {
	Gateway GatewayStatus `json:"gateway"`
}

// GatewayStatus is the cluster as one gateway sees it.
type GatewayStatus struct {
	// Profile is the gateway's profile.
	Profile string `json:"profile"`
	// Detail is "full" (a loopback caller) or "masked" (URLs hidden).
	Detail string `json:"detail"`
	// Cluster is every registered GPU and the line.
	cluster.View
	// Recent lists this gateway's last finished dispatches, newest first.
	Recent []statuspage.Finished `json:"recent"`
}

// page is the gateway's status page and its JSON.
type page struct {
	g       *Gateway
	handler *statuspage.Handler
	recent  *statuspage.Recent
}

func newPage(g *Gateway) *page {
	p := &page{g: g, recent: statuspage.NewRecent(0)}
	p.handler = statuspage.NewHandler(func(r *http.Request) (any, error) { return p.status(r) }, statuspage.Options{})
	return p
}

// serve answers the page's paths and reports whether it did.
func (p *page) serve(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == PathStatus {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "gateway: /gpulock/status answers GET only", http.StatusMethodNotAllowed)
			return true
		}
		st, err := p.status(r)
		if err != nil {
			writeUnavailable(w, p.g.cfg.RetryAfter, "cluster_unreachable", err.Error())
			return true
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(st)
		return true
	}
	if !statuspage.Serves(r.URL.Path) {
		return false
	}
	p.handler.ServeHTTP(w, r)
	return true
}

// status reads the cluster's state as the caller of r may see it.
func (p *page) status(r *http.Request) (Status, error) {
	ctx, cancel := context.WithTimeout(r.Context(), viewTimeout)
	defer cancel()
	st, err := ReadStatus(ctx, p.g.cfg.Store, p.g.cfg.Profile, r.URL.Query().Get(QueryClient)) // position.go
	if err != nil {
		return Status{}, err
	}
	v := st.Gateway.View
	detail := "full"
	if !statuspage.LoopbackCaller(r) {
		detail = "masked"
		for i := range v.GPUs {
			v.GPUs[i].URL = maskedURL
			if h := v.GPUs[i].Holder; h != nil {
				v.GPUs[i].Holder = &cluster.HolderView{Service: h.Service, Since: h.Since} // no pid, host, command
			}
		}
	}
	return Status{Gateway: GatewayStatus{Profile: p.g.cfg.Profile, Detail: detail, View: v, Recent: p.recent.List()}}, nil
}

// dispatched records a finished dispatch for the page and wakes its streams.
func (p *page) dispatched(r *http.Request, id, gpu string, waited, total time.Duration, status int) {
	p.recent.Add(statuspage.Finished{Service: gpu, Client: id, Route: r.Method + " " + r.URL.Path,
		WaitedSeconds: waited.Seconds(), RanSeconds: (total - waited).Seconds(),
		Result: http.StatusText(status), Ended: time.Now()})
	p.handler.Notify()
}
