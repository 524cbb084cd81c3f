package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Error codes: the "code" of an error answer.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeCSRF             = "csrf_failed"
	codeTooManyRequests  = "too_many_requests"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeTooLarge         = "too_large"
	codeTokenNotSaved    = "token_not_saved"
	codeUnavailable      = "unavailable"
	codeInternal         = "internal_error"
)

// apiError is an error answer: its status, code and message.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

// errorBody is the one JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, codeBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, codeNotFound, fmt.Sprintf(format, args...)}
}

// unavailable logs err, a failure of the engine to do what (which the
// client is not told about), and returns the 503 answer.
func (s *Server) unavailable(r *http.Request, what string, err error) error {
	if r.Context().Err() == nil {
		s.log.Error("admin request failed", "method", r.Method, "route", r.Pattern, "error", err)
	}
	return &apiError{http.StatusServiceUnavailable, codeUnavailable,
		fmt.Sprintf("the engine could not %s; see the server log", what)}
}

// fail writes the answer for err: an *apiError as it is, an oversize body
// as 413, anything else as 500 (logged).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = &apiError{http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the client is gone
	default:
		s.log.Error("admin request failed", "method", r.Method, "route", r.Pattern, "error", err)
		ae = &apiError{http.StatusInternalServerError, codeInternal, "the request failed; see the server log"}
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	writeJSON(w, ae.status, body)
}

// writeJSON writes v as the answer, with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // stored events are shown as kept
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"` + codeInternal + `","message":"the answer could not be encoded"}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Body limits.
const (
	maxBody        = 64 << 10
	maxPreviewBody = 1 << 20
)

// decodeBody decodes r's JSON body, at most limit bytes, into v: exactly
// one JSON value with no unknown field. want describes the expected body
// for the messages.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, want string) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if err = dec.Decode(&json.RawMessage{}); err == io.EOF {
			return nil
		}
		if err == nil {
			return badRequest("the request body holds more than one JSON value; it must be %s", want)
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case err == io.EOF:
		return badRequest("the request body is empty; it must be %s", want)
	}
	return badRequest("the request body must be %s: %v", want, err)
}
