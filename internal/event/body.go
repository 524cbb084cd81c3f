package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Request-level error codes (§1.10): the whole request is refused.
const (
	CodeInvalidJSON     = "invalid_json"
	CodeInvalidBody     = "invalid_body"
	CodeInvalidBatch    = "invalid_batch"
	CodePayloadTooLarge = "payload_too_large"
	CodeTooManyItems    = "too_many_items"
)

// RequestError refuses a whole request.
type RequestError struct {
	Code    string
	Message string
}

func (e *RequestError) Error() string { return e.Code + ": " + e.Message }

// Body is a parsed tracking request body.
type Body struct {
	// WriteKey is the key found in the body (§1.4 steps 2 and 3), or "".
	WriteKey string
	// Items are the raw events: one for single-event endpoints.
	Items [][]byte
	// Envelope holds the batch-level sentAt, context and integrations.
	Envelope Envelope
}

var bom = []byte("\xef\xbb\xbf")

// checkJSON validates b as UTF-8 JSON whose top level is an object, and
// splits that object (and the array under key, see splitBody) on the way.
func checkJSON(obj object, b []byte, key string) ([]byte, object, [][]byte, *RequestError) {
	if len(b) > MaxRequestBytes {
		return nil, nil, nil, &RequestError{CodePayloadTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxRequestBytes)}
	}
	b = bytes.TrimPrefix(b, bom)
	if !utf8.Valid(b) {
		return nil, nil, nil, &RequestError{CodeInvalidJSON, "request body is not valid UTF-8"}
	}
	obj, elems, valid := splitBody(obj, b, key)
	if !valid {
		msg := "request body is not valid JSON"
		var raw json.RawMessage
		var se *json.SyntaxError
		if err := json.Unmarshal(b, &raw); errors.As(err, &se) {
			msg = fmt.Sprintf("%s: %s at byte %d", msg, se.Error(), se.Offset)
		} else if len(bytes.TrimSpace(b)) == 0 {
			msg = "request body is empty"
		}
		return nil, nil, nil, &RequestError{CodeInvalidJSON, msg}
	}
	if obj == nil {
		return nil, nil, nil, &RequestError{CodeInvalidBody, "request body must be a JSON object"}
	}
	return b, obj, elems, nil
}

// ParseSingle parses the body of a single-event endpoint (§1.5).
func ParseSingle(b []byte) (*Body, *RequestError) {
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	b, obj, _, rerr := checkJSON(sc.obj, b, "")
	if obj != nil {
		sc.obj = obj
	}
	if rerr != nil {
		return nil, rerr
	}
	if len(b) > MaxEventBytes {
		return nil, &RequestError{CodeEventTooLarge, fmt.Sprintf("event is %d bytes; the limit is %d", len(b), MaxEventBytes)}
	}
	return &Body{WriteKey: stringValue(obj.get("writeKey")), Items: [][]byte{b}}, nil
}

// ParseBatch parses the body of a batch endpoint (§1.6).
func ParseBatch(b []byte) (*Body, *RequestError) {
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	_, obj, items, rerr := checkJSON(sc.obj, b, "batch")
	if obj != nil {
		sc.obj = obj
	}
	if rerr != nil {
		return nil, rerr
	}
	if items == nil {
		return nil, &RequestError{CodeInvalidBatch, "batch is required and must be an array of events"}
	}
	if len(items) > MaxBatchItems {
		return nil, &RequestError{CodeTooManyItems, fmt.Sprintf("batch has %d events; the limit is %d", len(items), MaxBatchItems)}
	}
	body := &Body{Items: items, WriteKey: stringValue(obj.get("writeKey"))}
	if body.WriteKey == "" && len(items) > 0 {
		if first, ok := parseObjectInto(sc.ctx, items[0]); ok {
			body.WriteKey = stringValue(first.get("writeKey"))
			sc.ctx = first
		}
	}
	if t, ok := parseTimeValue(obj.get("sentAt")); ok {
		body.Envelope.SentAt = t
	}
	if c := obj.get("context"); kind(c) == 'o' {
		body.Envelope.Context = c
	}
	if in := obj.get("integrations"); kind(in) == 'o' {
		body.Envelope.Integrations = in
	}
	return body, nil
}

func stringValue(v []byte) string {
	if kind(v) != 's' {
		return ""
	}
	return decodeString(v)
}
