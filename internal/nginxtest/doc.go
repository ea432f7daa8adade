// Package nginxtest holds the end-to-end tests that run the real nginx in
// front of gpulock shims, with the configuration files of examples/nginx
// (ports substituted): one machine behind single-host.conf, and three
// simulated machines behind central-lb.conf. Every backend, shim and nginx
// runs as its own process on loopback.
package nginxtest
