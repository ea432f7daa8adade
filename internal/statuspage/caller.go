package statuspage

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// forwardingHeaders name the client's address when a proxy (the nginx
// example) forwards the request: a request that carries any of them is a
// loopback caller only if every address they name is loopback.
// They are in canonical form, so that looking them up costs no allocation.
var forwardingHeaders = []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip"}

// LoopbackCaller reports whether r comes from this machine: its peer is a
// loopback address and no forwarding header names another address. Behind
// a proxy on the same machine the peer is the proxy's loopback address, so
// the forwarding headers decide; they can only take detail away, never
// grant it. It is the one rule by which the shim's and the gateway's pages
// decide who sees full detail.
func LoopbackCaller(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || !loopbackAddr(host) {
		return false
	}
	for _, h := range forwardingHeaders {
		for _, v := range r.Header[h] {
			for elem := range strings.SplitSeq(v, ",") {
				addr := strings.TrimSpace(elem)
				if h == "Forwarded" {
					var ok bool
					if addr, ok = forwardedFor(elem); !ok {
						continue // an element with no for= names no client
					}
				}
				if !loopbackAddr(addr) {
					return false
				}
			}
		}
	}
	return true
}

// forwardedFor returns the for= parameter of one element of an RFC 7239
// Forwarded header, unquoted.
func forwardedFor(elem string) (string, bool) {
	for pair := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
			return strings.Trim(strings.TrimSpace(v), `"`), true
		}
	}
	return "", false
}

// loopbackAddr reports whether s is a loopback IP address, with or without
// a port, brackets or zone. Anything else ("unknown", an obfuscated
// identifier, a host name, "") is not.
func loopbackAddr(s string) bool {
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	return err == nil && a.Unmap().IsLoopback()
}
