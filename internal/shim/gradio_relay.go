package shim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsFrame is one websocket message.
type wsFrame struct {
	typ  websocket.MessageType
	data []byte
}

// wsEvent is a frame read from one side, or the error that ended that side.
type wsEvent struct {
	fromClient bool
	gen        int // which backend socket, for frames from the backend
	frame      wsFrame
	err        error
}

// acquireResult is how a wait for the lock ended.
type acquireResult struct {
	hd  *hold
	err error
}

// gradioRelay relays one gradio queue websocket. One goroutine (run's)
// owns all its state; a reader goroutine per socket and one waiting for
// the lock report to it over channels, and all of them end before run
// returns.
type gradioRelay struct {
	s       *Shim
	r       *http.Request
	client  *websocket.Conn
	backend *websocket.Conn
	gen     int // the backend socket's generation, raised when one is dropped

	events   chan wsEvent
	done     chan struct{} // closed when run stops listening
	readers  sync.WaitGroup
	acquired chan acquireResult
	waiting  bool // a wait for the lock is under way
	stopWait context.CancelFunc

	wantHash  bool      // the backend sent send_hash: the client's next frame is its hash frame
	hash      *wsFrame  // the client's hash frame, replayed on a new backend socket
	askedData time.Time // when the backend last sent send_data

	held      *wsFrame    // a UI job's data frame waiting for the lock
	taskID    string      // its task id
	later     []wsFrame   // client frames that came after it, in order
	dropAt    *time.Timer // when held gives up on the backend socket that asked for it
	dropped   bool        // the backend socket was dropped; rejoin once the lock is held
	replaying bool        // a new backend socket: answer its send_hash and send_data from memory

	hd        *hold // the lock, while a UI job has it
	forwarded bool  // hd's data frame went to the backend: the job may run
}

// relayEnd says how a relay ended.
type relayEnd struct {
	clientErr  error // the client's socket ended
	backendErr error // the backend's socket ended
	closeCode  websocket.StatusCode
	reason     string
	outcome    string // a refusal's outcome, when the lock was not given
}

// run relays until either socket ends, then closes both and releases the lock.
func (rl *gradioRelay) run() {
	rl.read(rl.client, true, 0)
	rl.read(rl.backend, false, rl.gen)
	end := rl.loop()
	rl.finish(end)
}

// read starts the reader of one socket.
func (rl *gradioRelay) read(conn *websocket.Conn, fromClient bool, gen int) {
	rl.readers.Go(func() {
		for {
			typ, data, err := conn.Read(context.Background()) // the socket's life is ended by closing it
			select {
			case rl.events <- wsEvent{fromClient: fromClient, gen: gen, frame: wsFrame{typ, data}, err: err}:
			case <-rl.done:
				return
			}
			if err != nil {
				return
			}
		}
	})
}

// loop handles events until the relay ends.
func (rl *gradioRelay) loop() relayEnd {
	for {
		var drop <-chan time.Time
		if rl.dropAt != nil {
			drop = rl.dropAt.C
		}
		select {
		case ev := <-rl.events:
			switch {
			case ev.fromClient && ev.err != nil:
				return relayEnd{clientErr: ev.err}
			case ev.fromClient:
				if err := rl.fromClient(ev.frame); err != nil {
					return relayEnd{backendErr: err}
				}
			case ev.gen != rl.gen:
				// A backend socket the relay dropped.
			case ev.err != nil:
				return relayEnd{backendErr: ev.err}
			default:
				if end, err := rl.fromBackend(ev.frame); err != nil || end != nil {
					if end != nil {
						return *end
					}
					return relayEnd{clientErr: err}
				}
			}
		case res := <-rl.acquired:
			rl.waiting = false
			if res.err != nil {
				return rl.refuse(res.err)
			}
			rl.hd = res.hd
			if end := rl.sendHeld(); end != nil {
				return *end
			}
		case <-drop:
			rl.dropBackend()
		}
	}
}

// fromClient handles a frame from the client: a UI job's data frame waits
// for the lock, the rest goes to the backend in order.
func (rl *gradioRelay) fromClient(f wsFrame) error {
	if rl.wantHash && f.typ == websocket.MessageText {
		rl.wantHash = false
		rl.hash = &f
	}
	if rl.held != nil || rl.replaying {
		rl.later = append(rl.later, f) // keep the order behind the held frame
		return nil
	}
	if f.typ == websocket.MessageText && rl.hd == nil {
		if id, ok := gradioTaskID(f.data); ok {
			rl.hold(f, id)
			return nil
		}
	}
	return rl.write(rl.backend, f)
}

// hold keeps a UI job's data frame and starts the wait for the lock; the
// wait ends when either socket does.
func (rl *gradioRelay) hold(f wsFrame, id string) {
	rl.held, rl.taskID = &f, id
	ctx, cancel := context.WithCancel(context.Background())
	rl.stopWait, rl.waiting = cancel, true
	go func() {
		hd, err := rl.s.acquire(ctx, routeGradioQueue, id, rl.s.turnOf(rl.r, ""))
		rl.acquired <- acquireResult{hd, err} // buffered: never blocks
	}()
	asked := rl.askedData
	if asked.IsZero() {
		asked = time.Now()
	}
	rl.dropAt = time.NewTimer(time.Until(asked.Add(gradioDataWait)))
}

// dropBackend closes the backend socket that asked for the held data frame
// before gradio gives up on it; the relay joins again once the lock is held.
func (rl *gradioRelay) dropBackend() {
	rl.dropAt = nil
	if rl.held == nil || rl.hash == nil || rl.dropped {
		return // nothing waits, or nothing to join again with
	}
	rl.dropped = true
	rl.gen++
	_ = rl.backend.CloseNow()
	rl.s.cfg.Logger.Info("gradio data frame waits for the GPU longer than the backend would; will join its queue again",
		"service", rl.s.cfg.Name, "task", rl.taskID)
}

// sendHeld forwards the held data frame once the lock is held, joining the
// backend's queue again if its socket was dropped meanwhile.
func (rl *gradioRelay) sendHeld() *relayEnd {
	if rl.dropAt != nil {
		rl.dropAt.Stop()
		rl.dropAt = nil
	}
	if !rl.dropped {
		return rl.forwardHeld()
	}
	backend, _, err := rl.s.dialGradio(context.Background(), rl.r)
	if err != nil {
		return &relayEnd{backendErr: err, closeCode: websocket.StatusInternalError, reason: "gpulock: the backend did not take the websocket again"}
	}
	rl.backend, rl.dropped, rl.replaying = backend, false, true
	rl.read(backend, false, rl.gen)
	return nil
}

// forwardHeld sends the held data frame and the client's frames after it.
func (rl *gradioRelay) forwardHeld() *relayEnd {
	f := *rl.held
	rl.held = nil
	if err := rl.write(rl.backend, f); err != nil {
		return &relayEnd{backendErr: err}
	}
	rl.forwarded = true
	later := rl.later
	rl.later = nil
	for _, f := range later {
		if err := rl.fromClient(f); err != nil {
			return &relayEnd{backendErr: err}
		}
	}
	return nil
}

// fromBackend handles a frame from the backend: it goes to the client, but
// for a new socket's send_hash and send_data, which the relay answers
// itself; process_completed releases the lock.
func (rl *gradioRelay) fromBackend(f wsFrame) (*relayEnd, error) {
	var m struct {
		Msg     string `json:"msg"`
		Success *bool  `json:"success"`
	}
	if f.typ == websocket.MessageText {
		_ = json.Unmarshal(f.data, &m) // not JSON: relayed as is
	}
	if rl.replaying {
		switch m.Msg {
		case "send_hash":
			return nil, rl.write(rl.backend, *rl.hash)
		case "send_data":
			rl.replaying = false
			return rl.forwardHeld(), nil
		case "estimation":
		default:
			// A refusal (queue_full, an error) before the data frame: the
			// client sees it, and the job never ran.
			rl.replaying, rl.held, rl.later = false, nil, nil
			if rl.hd != nil {
				rl.hd.release(outcomeRefused, "task", rl.taskID)
				rl.hd = nil
			}
		}
	}
	switch m.Msg {
	case "send_hash":
		rl.wantHash = true
	case "send_data":
		rl.askedData = time.Now()
	case "process_completed":
		if rl.hd != nil {
			outcome := outcomeDone
			if m.Success != nil && !*m.Success {
				outcome = outcomeRefused
			}
			rl.hd.release(outcome, "task", rl.taskID)
			rl.hd, rl.forwarded = nil, false
		}
	}
	return nil, rl.write(rl.client, f)
}

// write sends a frame to one side.
func (rl *gradioRelay) write(conn *websocket.Conn, f wsFrame) error {
	ctx, cancel := context.WithTimeout(context.Background(), gradioWriteTimeout)
	defer cancel()
	return conn.Write(ctx, f.typ, f.data)
}

// refuse answers a UI job that did not get the lock: gradio's queue_full
// frame when the line is full, too slow or shutting down; nothing was
// forwarded.
func (rl *gradioRelay) refuse(err error) relayEnd {
	s := rl.s
	outcome := outcomeLockError
	switch {
	case errors.Is(err, errQueueFull):
		outcome = outcomeQueueFull
	case errors.Is(err, errQueueTimeout):
		outcome = outcomeQueueTimeout
	case errors.Is(err, errShuttingDown):
		outcome = outcomeShutdown
	}
	s.metrics.finished(outcome, 0)
	s.cfg.Logger.Warn("job", "service", s.cfg.Name, "route", routeGradioQueue, "task", rl.taskID, "outcome", outcome, "err", err)
	if outcome == outcomeLockError {
		return relayEnd{outcome: outcome, closeCode: websocket.StatusInternalError, reason: "gpulock: the GPU lock failed"}
	}
	_ = rl.write(rl.client, wsFrame{websocket.MessageText, []byte(`{"msg": "queue_full"}`)})
	return relayEnd{outcome: outcome, closeCode: websocket.StatusNormalClosure}
}

// finish closes both sockets (passing on the status of the side that
// closed), stops the wait for the lock and the readers, and releases the
// lock: at once if nothing was forwarded, or once A1111 reports idle if a
// job may be running whose process_completed never came.
func (rl *gradioRelay) finish(end relayEnd) {
	if rl.dropAt != nil {
		rl.dropAt.Stop()
	}
	code, reason := end.closeCode, end.reason
	switch {
	case end.clientErr != nil && code == 0:
		code, reason = passedOnStatus(end.clientErr)
		_ = rl.backend.Close(code, reason)
	case end.backendErr != nil && code == 0:
		code, reason = passedOnStatus(end.backendErr)
		_ = rl.client.Close(code, reason)
	default:
		if code == 0 {
			code = websocket.StatusNormalClosure
		}
		_ = rl.client.Close(code, reason)
		_ = rl.backend.Close(code, reason)
	}
	_ = rl.client.CloseNow()
	_ = rl.backend.CloseNow()
	close(rl.done)
	rl.readers.Wait()

	if rl.waiting {
		rl.stopWait()
		if res := <-rl.acquired; res.err == nil {
			rl.hd = res.hd // got it as the sockets ended: nothing was forwarded
		} else {
			rl.s.metrics.finished(outcomeClientLeft, 0)
			rl.s.cfg.Logger.Info("job", "service", rl.s.cfg.Name, "route", routeGradioQueue, "task", rl.taskID,
				"outcome", outcomeClientLeft, "err", res.err)
		}
	}
	if rl.stopWait != nil {
		rl.stopWait()
	}
	if rl.hd == nil {
		return
	}
	if !rl.forwarded {
		rl.hd.release(outcomeClientLeft, "task", rl.taskID)
		return
	}
	// The job runs on without its sockets (A1111 cancels nothing): keep
	// the GPU until A1111 is idle.
	if err := rl.s.waitIdle(context.Background()); err != nil {
		rl.s.cfg.Logger.Warn("A1111 still busy after a UI job's sockets closed; releasing the GPU anyway",
			"service", rl.s.cfg.Name, "task", rl.taskID, "err", err)
	}
	rl.hd.release(outcomeDone, "task", rl.taskID, "sockets", "closed before process_completed")
}

// passedOnStatus is the close status to send one side when the other's
// socket ended with err: its own close status where it sent one that may
// be sent, otherwise going away (the peer vanished) or, for a frame over
// the read limit, too big.
func passedOnStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.StatusNoStatusRcvd, websocket.StatusAbnormalClosure, websocket.StatusTLSHandshake:
			return websocket.StatusGoingAway, ""
		}
		return ce.Code, ce.Reason
	}
	if errors.Is(err, websocket.ErrMessageTooBig) {
		return websocket.StatusMessageTooBig, "gpulock: frame over the shim's --max-body"
	}
	return websocket.StatusGoingAway, ""
}
