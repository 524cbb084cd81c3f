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

// checkJSON validates b as UTF-8 JSON whose top level is an object.
func checkJSON(b []byte) ([]byte, *RequestError) {
	if len(b) > MaxRequestBytes {
		return nil, &RequestError{CodePayloadTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxRequestBytes)}
	}
	b = bytes.TrimPrefix(b, bom)
	if !utf8.Valid(b) {
		return nil, &RequestError{CodeInvalidJSON, "request body is not valid UTF-8"}
	}
	if !json.Valid(b) {
		msg := "request body is not valid JSON"
		var raw json.RawMessage
		var se *json.SyntaxError
		if err := json.Unmarshal(b, &raw); errors.As(err, &se) {
			msg = fmt.Sprintf("%s: %s at byte %d", msg, se.Error(), se.Offset)
		} else if len(bytes.TrimSpace(b)) == 0 {
			msg = "request body is empty"
		}
		return nil, &RequestError{CodeInvalidJSON, msg}
	}
	if i := skipSpace(b, 0); i >= len(b) || b[i] != '{' {
		return nil, &RequestError{CodeInvalidBody, "request body must be a JSON object"}
	}
	return b, nil
}

// ParseSingle parses the body of a single-event endpoint (§1.5).
func ParseSingle(b []byte) (*Body, *RequestError) {
	b, rerr := checkJSON(b)
	if rerr != nil {
		return nil, rerr
	}
	if len(b) > MaxEventBytes {
		return nil, &RequestError{CodeEventTooLarge, fmt.Sprintf("event is %d bytes; the limit is %d", len(b), MaxEventBytes)}
	}
	obj, _ := parseObject(b)
	return &Body{WriteKey: stringValue(obj.get("writeKey")), Items: [][]byte{b}}, nil
}

// ParseBatch parses the body of a batch endpoint (§1.6).
func ParseBatch(b []byte) (*Body, *RequestError) {
	b, rerr := checkJSON(b)
	if rerr != nil {
		return nil, rerr
	}
	obj, _ := parseObject(b)
	items, ok := parseArray(obj.get("batch"))
	if !ok {
		return nil, &RequestError{CodeInvalidBatch, "batch is required and must be an array of events"}
	}
	if len(items) > MaxBatchItems {
		return nil, &RequestError{CodeTooManyItems, fmt.Sprintf("batch has %d events; the limit is %d", len(items), MaxBatchItems)}
	}
	body := &Body{Items: items, WriteKey: stringValue(obj.get("writeKey"))}
	if body.WriteKey == "" && len(items) > 0 {
		if first, ok := parseObject(items[0]); ok {
			body.WriteKey = stringValue(first.get("writeKey"))
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
