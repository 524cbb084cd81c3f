package ingest

import (
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// ServerEvent turns one raw event of the server source named source into
// the stream.Event that the tracking API would store for it, had a server
// (no Origin header, no cookie) posted it in a batch: the same nesting
// check, validation and normalisation (event.Normalize with req), the
// userHash taken out of the stored document, and stream.TrustServer. The
// caller sets the request facts (RequestID, UserAgent) and appends it
// through the one append path (stream.Writer), as ingest does. It is what
// `capstan import` stores each row with, so imported events are exactly
// what the HTTP API would have stored. raw must be valid JSON (event.
// ParseSingle checks it). It is safe for concurrent use.
func ServerEvent(source string, raw []byte, req *event.Request) (stream.Event, *event.Event, *event.DropError) {
	if derr := event.CheckDepth(raw); derr != nil {
		return stream.Event{}, nil, derr
	}
	ev, derr := event.Normalize(raw, "", req)
	if derr != nil {
		return stream.Event{}, nil, derr
	}
	_, doc, _ := eventUserHash(ev)
	return stream.Event{
		Source: source, Type: string(ev.Type), MessageID: ev.MessageID, Doc: doc,
		Trust: stream.TrustServer,
	}, ev, nil
}
