package delivery

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
)

// Format is the pure half of a destination type: it turns a mapping's output
// into a payload and payloads into requests. It does no I/O, so delivery,
// `capstan preview` and the console build exactly the same requests from it.
// Implementations must be safe for concurrent use.
type Format interface {
	// DefaultFields is the destination type's default field map, in
	// Segment's mapping-kit JSON: the fields a capstan YAML mapping takes
	// when it leaves them out. nil means none.
	DefaultFields() []byte
	// Build makes one payload from a mapping's output, fields (an object,
	// or Undefined when the mapping gave nothing: read as an empty object;
	// the Format reads what it needs with its accessors, without a map per
	// event). ids are the identifiers capstan knows for the person (from the
	// event, its request and the identity graph); the event's own mapped
	// values win over them, and fields the mapping removed (route.Removed)
	// are never filled. An error means the conversion is invalid and is
	// dead-lettered as such; one that implements [Problem] tells the code,
	// status and details. fields may share memory with the event, which the
	// runner parses into reused memory (event.Arena): they are valid only
	// during the call, and the Payload keeps none of their objects or
	// arrays (strings it may keep).
	Build(route *Route, fields event.Value, ids identity.Captured, now time.Time) (Payload, error)
	// Requests groups payloads into requests, in the order of their first
	// payload. Each request's Items are positions in ps.
	Requests(ps []Payload) ([]Request, error)
}

// Destination is the sending half of a destination type; with its Format
// (the Plan's), it is all delivery knows of a remote. Adapter packages
// (internal/delivery/linkedin) implement both; package delivery never knows
// which remote it talks to. Implementations must be safe for concurrent use.
type Destination interface {
	// Send sends one request and classifies the answer. It never returns
	// a zero Answer: a transport failure is a Retry with Err set.
	Send(ctx context.Context, req Request) Answer
	// LimitKey names what the remote counts requests against (for
	// LinkedIn, the access token): destinations with the same key share
	// one rate limiter. It must not reveal a secret (hash it).
	LimitKey() string
}

// Preparer is implemented by destinations that must set something up before
// they deliver (LinkedIn: create conversion rules, associate campaigns).
// The runner calls Prepare until it succeeds, with backoff; an error for
// which NeedsOperator is true pauses the destination meanwhile.
type Preparer interface {
	Prepare(ctx context.Context, plan *Plan) error
	// NeedsOperator reports whether err can only be fixed by a person (a
	// revoked token, a missing permission, a sunset API version).
	NeedsOperator(err error) bool
}

// AccessChecker is implemented by destinations that can check their
// credentials and permissions without sending anything (LinkedIn: the
// token works, has its scopes, its member a role on the ad account). The
// runner checks once a day; an error for which the Preparer's
// NeedsOperator is true (any error, for a destination that is no
// Preparer) pauses the destination, keeping its events, and it is checked
// again every RunnerConfig.PauseRetry and at every Resume until it passes.
type AccessChecker interface {
	CheckAccess(ctx context.Context) error
}

// TokenSource is implemented by destinations whose credentials expire:
// /readyz, the console and a daily log line warn from 14 days before.
type TokenSource interface {
	// TokenExpiresAt is when the current access token expires (zero:
	// unknown).
	TokenExpiresAt() time.Time
}

// Payload is one conversion built by a Format, ready to be sent.
type Payload struct {
	// Value is the destination's own payload (for LinkedIn, the conversion
	// and how its mapping batches). Dead letters keep its JSON encoding.
	Value any
	// Happened is when the conversion happened: one that would leave the
	// destination's window (RunnerConfig.Window) before it can be sent
	// again is dead-lettered as expired instead of retried. Zero: never.
	Happened time.Time
	// Enriched names the fields capstan filled in and from where
	// ("linkedInUUID" → "context.page.url"); preview shows it. It may be
	// shared with other payloads (a Format hands out one map per content):
	// read only.
	Enriched map[string]string
	// IDs are the identifiers the payload carries that the remote matches
	// people on (match coverage); zero: none.
	IDs IDs
}

// Request is one request to the remote, built by a Format.
type Request struct {
	// Items are the positions, in the payloads given to Requests, of the
	// request's elements, in the order of the elements.
	Items []int
	// Value is the destination's encoded request (for LinkedIn, a
	// linkedin.Request); preview prints its JSON encoding.
	Value any
}

// Class is what delivery does after a request's answer.
type Class int

// Classes of an Answer.
const (
	// Accepted: every element was taken. Acknowledge; never resend.
	Accepted Class = iota + 1
	// Retry: transient. Wait at least Answer.RetryAfter (capped
	// exponential backoff with full jitter) and send the same request again.
	Retry
	// Split: the elements in Answer.Refused were refused. Dead-letter
	// those and send the others again at once.
	Split
	// TooLarge: the request was too large. Send each half on its own; a
	// single element is dead-lettered.
	TooLarge
	// Refused: the whole request is refused for a reason that retrying
	// cannot fix. Dead-letter every element.
	Refused
	// Pause: only an operator can fix this (credentials, permission, API
	// version). Pause the destination and keep the events until Resume.
	Pause
)

var classNames = [...]string{Accepted: "accepted", Retry: "retry", Split: "split", TooLarge: "too_large", Refused: "refused", Pause: "pause"}

// String returns the class's snake_case name.
func (c Class) String() string {
	if c > 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Answer is a destination's classification of one request's outcome.
type Answer struct {
	Class Class
	// Label is the metrics label of the outcome (the destination's own,
	// finer class names: "auth_revoked"); "" means Class.String().
	Label string
	// Status, Code and Message are the remote's answer, as dead letters
	// and logs show them (Message must not echo secrets).
	Status  int
	Code    string
	Message string
	// RequestID is the remote's id of the request, for support tickets.
	RequestID string
	// RetryAfter is the least wait before the next attempt (Retry).
	RetryAfter time.Duration
	// DayExhausted means the remote's daily limit is used up: the rate
	// limiter holds every request of this LimitKey until the next UTC day.
	DayExhausted bool
	// Refused lists, for Split, the refused elements; for Refused of a
	// single element, its details may be in Refused[0].
	Refused []Refusal
	// PauseReason says, for Pause, what an operator must fix.
	PauseReason string
	// Err is the transport error of a failed attempt (Retry), if any.
	Err error
}

// label returns the metrics label of a.
func (a Answer) label() string {
	if a.Label != "" {
		return a.Label
	}
	return a.Class.String()
}

// Refusal is one element the remote refused.
type Refusal struct {
	// Index is the element's position in the request (not in the payloads).
	Index   int
	Status  int
	Message string
	// Details are the remote's structured errors for the element.
	Details any
}

// Problem is implemented by Build errors that carry more than a message:
// dead letters and preview show the code, status and details.
type Problem interface {
	error
	Code() string
	Status() int
	Details() any
}

// problemOf returns err as a Problem, if it is one.
func problemOf(err error) (Problem, bool) {
	var p Problem
	ok := errors.As(err, &p)
	return p, ok
}
