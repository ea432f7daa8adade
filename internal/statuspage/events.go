package statuspage

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// serveEvents streams the status as server-sent events: one "status"
// event now, then one whenever Notify is called or PushEvery passes, until
// the client leaves or Close is called.
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "statuspage: this server cannot stream; poll /gpulock/status", http.StatusNotImplemented)
		return
	}
	select {
	case <-h.closed:
		http.Error(w, "statuspage: shutting down; poll /gpulock/status", http.StatusServiceUnavailable)
		return
	default:
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		w.Header().Set("Retry-After", "30")
		http.Error(w, "statuspage: too many open streams; poll /gpulock/status", http.StatusServiceUnavailable)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(h.opts.PushEvery)
	defer t.Stop()
	for {
		changed := h.changes() // before reading, so no change is missed
		if err := h.push(w, r); err != nil {
			return
		}
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-h.closed:
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// push writes one event: the status, or a "status_error" event saying why
// not (not "error": EventSource fires that name for a broken stream).
func (h *Handler) push(w http.ResponseWriter, r *http.Request) error {
	st, err := h.status(r)
	var b []byte
	if err == nil {
		b, err = json.Marshal(st)
	}
	if err != nil {
		msg, _ := json.Marshal(map[string]string{"error": err.Error()})
		_, werr := fmt.Fprintf(w, "event: status_error\ndata: %s\n\n", msg)
		return werr
	}
	_, err = fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
	return err
}
