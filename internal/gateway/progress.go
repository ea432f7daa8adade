package gateway

import (
	"context"
	"net"
	"net/http"
)

// HeaderClient names a client (the shim's X-GPULock-Client); without it a
// client is its address.
const HeaderClient = "X-GPULock-Client"

// clientOf returns who sent r.
func clientOf(r *http.Request) string {
	if c := r.Header.Get(HeaderClient); c != "" {
		return c
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// noteClientJob records, for A1111's /sdapi/v1/progress, that r's client
// has job running at url; call the returned func when the job ended.
func (g *Gateway) noteClientJob(ctx context.Context, r *http.Request, job, url string) func() {
	if g.cfg.Profile != "a1111" {
		return func() {}
	}
	client := clientOf(r)
	set := beside(func() { // beside the dispatch, not before it
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
		defer cancel()
		_ = g.cfg.Store.SetClientJob(sctx, client, job, url)
	})
	return func() {
		set()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
		defer cancel()
		_ = g.cfg.Store.ClearClientJob(cctx, client, job)
	}
}

// followsClientJob reports whether r is one of A1111's calls about the
// caller's running job: GET /sdapi/v1/progress, POST /sdapi/v1/interrupt
// and /sdapi/v1/skip.
func followsClientJob(r *http.Request) bool {
	switch r.Method + " " + r.URL.Path {
	case "GET /sdapi/v1/progress", "POST /sdapi/v1/interrupt", "POST /sdapi/v1/skip":
		return true
	}
	return false
}

// progress passes A1111's calls about the client's job (followsClientJob)
// to the machine running that job, else to any live machine.
func (g *Gateway) progress(w http.ResponseWriter, r *http.Request) {
	url, err := g.cfg.Store.ClientJobURL(r.Context(), clientOf(r))
	if err == nil && url != "" {
		g.pass(w, r, url)
		return
	}
	g.passAny(w, r)
}
