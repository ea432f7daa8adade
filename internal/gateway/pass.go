package gateway

import (
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// passAny passes a request that is not GPU work to any live machine.
func (g *Gateway) passAny(w http.ResponseWriter, r *http.Request) {
	urls, err := g.cfg.Store.LiveURLs(r.Context(), g.cfg.Profile)
	if err != nil {
		writeUnavailable(w, g.cfg.RetryAfter, "cluster_unreachable", "gpulock: cannot read the cluster's state in Redis: "+err.Error())
		return
	}
	if len(urls) == 0 {
		writeUnavailable(w, g.cfg.RetryAfter, "no_machine", "gpulock: no live machine serves "+g.cfg.Profile+"; start a shim with --redis")
		return
	}
	g.pass(w, r, urls[rand.IntN(len(urls))])
}

// pass proxies r to the shim at base.
func (g *Gateway) pass(w http.ResponseWriter, r *http.Request, base string) {
	u, err := url.Parse(base)
	if err != nil {
		writeError(w, http.StatusBadGateway, "bad_advertise", "gpulock: a shim advertises a bad URL "+base)
		return
	}
	p := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host },
		Transport: g.client.Transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, http.StatusBadGateway, "upstream_unreachable", "gpulock: cannot reach the machine "+base+": "+err.Error())
		},
	}
	p.ServeHTTP(w, r)
}
