// Package cluster keeps the state of gpulock's cluster mode in Redis: one
// line of waiting jobs for all profiles, the GPUs and the profiles each
// serves (one shim per profile, with a lease), and the atomic match between
// the two.
//
// The rule for who goes next lives in one place, the match in scripts.go:
// when a GPU becomes free it takes the first job in line it can serve
// (the line is ordered by the fair-turn rules, see Turn);
// when a job arrives it takes a free GPU whose last job loaded its model
// (models.go), else the GPU that has been free longest. Both are
// one Lua script, so a job never waits while a GPU that can serve it is
// free (HAProxy's lost wake-up cannot happen). A matched GPU is reserved
// for its job (with a lease) until its shim takes the job (Started) or the
// job goes back to its place in line (Requeue): a job that never started
// keeps its arrival number, a job that started is never run twice. A GPU
// offered by a member that holds its lock (OfferHeld) starts the job it
// matches in the same script: its shim runs it without asking Started
// (localturn.go).
//
// Pub/sub only wakes waiters up; the hash of each job is the record, and
// waiters also poll it, so a lost message costs one poll interval.
//
// For visibility (View, `gpulock status --redis`), a job's hash also keeps
// its client, level and start, running:<node/gpu> names the job a GPU
// runs, and each member publishes its lock's holder (holder.go). The
// cluster's wanted A1111 options live in one hash (options.go); a member
// applies them before its GPU is first offered (memberoptions.go).
package cluster
