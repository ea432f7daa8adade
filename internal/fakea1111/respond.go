package fakea1111

import (
	"encoding/json"
	"errors"
	"net/http"
)

// writeJSON answers status with v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is the body A1111's exception handler answers with.
type apiError struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
	Body   string `json:"body"`
	Errors string `json:"errors"`
}

// writeAPIError answers status with A1111's error shape.
func writeAPIError(w http.ResponseWriter, status int, name, detail, errs string) {
	writeJSON(w, status, apiError{Error: name, Detail: detail, Errors: errs})
}

// validationItem is one entry of FastAPI's 422 body.
type validationItem struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// decodeBody decodes r's JSON body into v; on failure it answers 422 like
// FastAPI and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(r.Body).Decode(v)
	if err == nil {
		return true
	}
	item := validationItem{Loc: []any{"body"}, Msg: err.Error(), Type: "value_error.jsondecode"}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		item = validationItem{Loc: []any{"body", typeErr.Field}, Msg: "value is not a valid " + typeErr.Type.String(),
			Type: "type_error." + typeErr.Type.String()}
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []validationItem{item}})
	return false
}
