package fakecomfy

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// checkOrigin wraps next with ComfyUI's origin-only middleware: a request
// whose Host is a loopback name and whose Origin names another host:port is
// answered 403.
func checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		host := strings.ToLower(r.Host)
		if origin != "" && host != "" && isLoopbackHost(host) {
			u, err := url.Parse(origin)
			if err == nil && u.Host != "" && strings.ToLower(u.Host) != host {
				w.WriteHeader(http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// isLoopbackHost reports whether host (with or without a port) is localhost
// or a loopback address.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
