package fakecomfy

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
)

// PromptRequest is the body of POST /prompt.
type PromptRequest struct {
	// Prompt is the graph {node_id: {class_type, inputs}}.
	Prompt json.RawMessage `json:"prompt"`
	// ClientID names the websocket client that gets the prompt's events.
	ClientID string `json:"client_id,omitempty"`
	// PromptID is taken as given; if empty a random id is made.
	PromptID string `json:"prompt_id,omitempty"`
	// Front puts the prompt ahead of those queued.
	Front bool `json:"front,omitempty"`
	// Number, if set, is the queue position (lower runs first).
	Number *float64 `json:"number,omitempty"`
	// ExtraData is kept with the prompt; client_id is added to it.
	ExtraData map[string]any `json:"extra_data,omitempty"`
}

// PromptResponse is the 200 answer to POST /prompt.
type PromptResponse struct {
	PromptID   string               `json:"prompt_id"`
	Number     float64              `json:"number"`
	NodeErrors map[string]NodeError `json:"node_errors"`
}

// handlePostPrompt answers POST /prompt: 200 at once for a valid prompt,
// 400 for an invalid one, 500 for malformed JSON.
func (s *Server) handlePostPrompt(w http.ResponseWriter, r *http.Request) {
	var req PromptRequest
	if err := decodeBody(r, &req); err != nil {
		writeServerError(w)
		return
	}
	resp, err := s.EnqueueLocal(req)
	var perr *PromptError
	if errors.As(err, &perr) {
		writeJSON(w, perr.Status, perr.body())
		return
	}
	if err != nil {
		writeServerError(w)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// EnqueueLocal queues a prompt as POST /prompt would, without an HTTP
// request, to simulate work queued directly (by the UI or an extension). It
// returns at once; an invalid prompt gives a *PromptError and is not queued.
func (s *Server) EnqueueLocal(req PromptRequest) (PromptResponse, error) {
	graph, outputs, err := validatePrompt(req.Prompt)
	if err != nil {
		return PromptResponse{}, err
	}
	if err := s.checkImages(graph, outputs); err != nil {
		return PromptResponse{}, err
	}
	extra := maps.Clone(req.ExtraData)
	if extra == nil {
		extra = map[string]any{}
	}
	if req.ClientID != "" {
		extra["client_id"] = req.ClientID
	}
	it := &queueItem{
		promptID:  req.PromptID,
		raw:       req.Prompt,
		graph:     graph,
		outputs:   outputs,
		extra:     extra,
		clientID:  req.ClientID,
		interrupt: make(chan struct{}),
	}
	if it.promptID == "" {
		it.promptID = newID()
	}
	s.mu.Lock()
	if req.Number != nil {
		it.number = *req.Number
	} else {
		it.number = s.nextNumber
		if req.Front {
			it.number = -it.number
		}
		s.nextNumber++
	}
	s.seq++
	it.seq = s.seq
	s.pending = append(s.pending, it)
	s.counters.Queued++
	s.broadcastStatusLocked()
	s.mu.Unlock()
	s.signal()
	return PromptResponse{PromptID: it.promptID, Number: it.number, NodeErrors: map[string]NodeError{}}, nil
}

// newID returns a random UUID-shaped id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
