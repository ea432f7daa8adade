// Package cluster keeps the state of gpulock's cluster mode in Redis: one
// line of waiting jobs for all profiles, the GPUs and the profiles each
// serves (one shim per profile, with a lease), and the atomic match between
// the two.
//
// The rule for who goes next lives in one place, the match in scripts.go:
// when a GPU becomes free it takes the first job in line it can serve
// (the line is ordered by the fair-turn rules, see Turn);
// when a job arrives it takes the GPU that has been free longest. Both are
// one Lua script, so a job never waits while a GPU that can serve it is
// free (HAProxy's lost wake-up cannot happen). A matched GPU is reserved
// for its job (with a lease) until its shim takes the job (Started) or the
// job goes back to its place in line (Requeue): a job that never started
// keeps its arrival number, a job that started is never run twice.
//
// Pub/sub carries each match to the gateways (ParseMatched), so the waiting
// one dispatches without reading the job back; the hash of each job is the
// record, and waiters also read it (backing off, and again after a
// resubscription), so a lost message costs one such read's interval.
//
// A shim's member (member.go, localturn.go) offers its GPU when the shim
// frees it, holding the lock for the job it matches (Claim), and takes
// the cluster's turns in the local line while the shim's own clients wait.
package cluster
