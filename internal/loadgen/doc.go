// Package loadgen is the API client side of gpulock's tests, demo and
// scale-out checks: it runs one ComfyUI or A1111 job the way real API
// clients do, through whatever base URL it is given (a backend, a shim, or
// a load balancer in front of shims).
package loadgen
