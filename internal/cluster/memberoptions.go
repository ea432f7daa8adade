package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// optionsTimeout bounds applying the cluster's A1111 options when a
// machine joins (a model load can take minutes).
const optionsTimeout = 10 * time.Minute

// optionsClient names the joining member's own options call in its shim's
// line and log (X-GPULock-Client).
const optionsClient = "gpulock-cluster-options"

func keyJoining(member string) string { return prefix + "joining:" + member }

// markJoining marks an A1111 member that has not applied the cluster's
// options yet (gpulock:joining:<member>, for a lease, renewed with the
// registration): the offer script gives it no job through a sibling (the
// ComfyUI shim of the same GPU) meanwhile.
func (m *Member) markJoining(ctx context.Context) error {
	if m.cfg.Profile != "a1111" || m.joined {
		return nil
	}
	if err := m.cfg.Store.rdb.Set(ctx, keyJoining(m.id), "1", m.cfg.Lease).Err(); err != nil {
		return redisErr(err)
	}
	return nil
}

// joinOptions applies the cluster's wanted A1111 options (a model set
// through a gateway) to a member's machine when it joins, before its GPU
// is first offered: Run does not offer while pending or under way.
type joinOptions struct {
	pending bool       // apply before the next offer
	done    chan error // the apply under way; nil when none
}

// busy reports whether the GPU must not be offered yet.
func (j *joinOptions) busy() bool { return j.pending || j.done != nil }

// start applies the options in the background unless an apply is under
// way; Run owns the goroutine and waits for it (wait) before it returns.
func (j *joinOptions) start(ctx context.Context, m *Member) {
	if !j.pending || j.done != nil {
		return
	}
	j.pending = false
	done := make(chan error, 1)
	j.done = done
	go func() { done <- m.applyOptions(ctx) }()
}

// finished is Run's answer to the apply's end: the GPU may now take jobs
// through its sibling too.
func (j *joinOptions) finished(ctx context.Context, m *Member, err error) {
	j.done = nil
	m.joined = true
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Lease/3)
	if derr := m.cfg.Store.rdb.Del(rctx, keyJoining(m.id)).Err(); derr != nil {
		m.cfg.Logger.Warn("cannot clear the joining mark; it runs out with the lease", "gpu", m.id, "err", derr)
	}
	cancel()
	if err != nil {
		m.cfg.Logger.Error("cannot apply the cluster's A1111 options on joining; the GPU serves with the machine's own", "gpu", m.id, "err", err)
	}
}

// wait waits for an apply under way (its ctx has ended).
func (j *joinOptions) wait() {
	if j.done != nil {
		<-j.done
		j.done = nil
	}
}

// applyOptions posts the cluster's wanted options to the member's own
// shim, as a local client: a model change takes the GPU lock there.
func (m *Member) applyOptions(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.Lease)
	body, err := m.cfg.Store.WantedOptions(rctx)
	cancel()
	if err != nil || body == nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, optionsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, strings.TrimSuffix(m.cfg.Advertise, "/")+"/sdapi/v1/options", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cluster: cannot make the options request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GPULock-Client", optionsClient)
	tr := http.DefaultTransport.(*http.Transport).Clone() // one call: no idle connection left behind
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("cluster: cannot post the cluster's options to this shim at %s (check --advertise): %w", m.cfg.Advertise, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("cluster: the backend refused the cluster's options %s: %s %s", body, resp.Status, bytes.TrimSpace(msg))
	}
	m.cfg.Logger.Info("applied the cluster's A1111 options on joining", "gpu", m.id, "options", string(body))
	return nil
}
