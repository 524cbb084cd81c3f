package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/capstan-gw/capstan/internal/event"
)

// Bodies are read as their bytes arrive, into buffers that grow with them:
// nothing is reserved from a declared Content-Length, so a connection that
// sent only headers holds a few hundred bytes, not the 512000 its header
// announces (issue 17: 300 such connections held 193 MB). What requests
// hold together is capped by a budget (server.max_inflight_body_bytes).
const (
	// firstRead is a new buffer's first size (bytes.MinRead).
	firstRead = 512
	// maxRead is the most read at once: the budget trails the bytes read
	// by at most this much per request.
	maxRead = 32 << 10
	// budgetGrant is the unit in which a request takes budget.
	budgetGrant = 16 << 10
	// budgetWait is how long a request waits for budget before it gets
	// 503 with Retry-After.
	budgetWait = time.Second
)

type httpError struct {
	status int
	code   string
	msg    string
}

// bodyPool holds request body buffers. A body is only read while its request
// is handled: everything stored or answered is copied out of it first.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBody(b *bytes.Buffer) {
	b.Reset()
	bodyPool.Put(b)
}

// budget caps the body bytes held by requests in progress, all connections
// together. Requests take it as bytes arrive, in grants of budgetGrant, and
// give it back when answered. It is safe for concurrent use; a nil budget
// has no limit.
type budget struct {
	sem  *semaphore.Weighted
	held atomic.Int64 // bytes taken, for the metric
}

func newBudget(size int64) *budget {
	if size <= 0 {
		return nil
	}
	return &budget{sem: semaphore.NewWeighted(size)}
}

// take takes n bytes, waiting up to budgetWait (or until ctx ends) when
// they are not free; false when it could not.
func (b *budget) take(ctx context.Context, n int64) bool {
	if b == nil {
		return true
	}
	if !b.sem.TryAcquire(n) {
		ctx, cancel := context.WithTimeout(ctx, budgetWait)
		defer cancel()
		if b.sem.Acquire(ctx, n) != nil {
			return false
		}
	}
	b.held.Add(n)
	return true
}

// give gives back n bytes taken.
func (b *budget) give(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.held.Add(-n)
	b.sem.Release(n)
}

// inflight returns the bytes held now.
func (b *budget) inflight() int64 {
	if b == nil {
		return 0
	}
	return b.held.Load()
}

// readBody reads the request body into buf, gunzipping it when asked, and
// refuses it once the decompressed size passes limit. The body returned
// lives in buf. The bytes read are charged to h's budget and added to
// *held, which the caller gives back once done with the body; when the
// budget is spent, readBody sets Retry-After and answers 503.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, limit int, buf *bytes.Buffer, held *int64) ([]byte, *httpError) {
	tooLarge := func() *httpError { // built only when needed: Sprintf was 1% of a track request's CPU
		return &httpError{http.StatusBadRequest, event.CodePayloadTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit)}
	}
	var rd io.Reader = http.MaxBytesReader(w, r.Body, int64(limit)+1)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge()
			}
			return nil, &httpError{http.StatusBadRequest, event.CodeInvalidJSON, "request body is not valid gzip data"}
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, &httpError{http.StatusUnsupportedMediaType, "unsupported_encoding", fmt.Sprintf("Content-Encoding %q is not supported; use gzip or none", enc)}
	}
	err := h.fill(r.Context(), buf, rd, limit, held)
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errBudget):
		w.Header().Set("Retry-After", "1")
		return nil, &httpError{http.StatusServiceUnavailable, "unavailable", "capstan holds as much request data as it may (server.max_inflight_body_bytes); retry later"}
	case errors.As(err, &mbe) || buf.Len() > limit:
		return nil, tooLarge()
	case err != nil && strings.Contains(r.Header.Get("Content-Encoding"), "gzip"):
		return nil, &httpError{http.StatusBadRequest, event.CodeInvalidJSON, "request body is not valid gzip data"}
	case err != nil:
		return nil, &httpError{http.StatusBadRequest, event.CodeInvalidJSON, "request body could not be read"}
	}
	return buf.Bytes(), nil
}

// errBudget means the in-flight body budget is spent.
var errBudget = errors.New("in-flight body budget spent")

// fill reads rd into buf until EOF or until buf holds more than limit
// bytes. buf grows only when full, by doubling, so its size follows the
// bytes that arrived. Every byte read is charged to the budget first thing
// after it arrived (in grants, added to *held).
func (h *Handler) fill(ctx context.Context, buf *bytes.Buffer, rd io.Reader, limit int, held *int64) error {
	for buf.Len() <= limit {
		if buf.Available() == 0 {
			buf.Grow(firstRead) // at least doubles a full buffer
		}
		p := buf.AvailableBuffer()
		p = p[:min(cap(p), maxRead, limit+1-buf.Len())]
		n, err := rd.Read(p)
		buf.Write(p[:n]) // p is buf's own free space: this only extends buf
		if over := int64(buf.Len()) - *held; over > 0 {
			grant := (over + budgetGrant - 1) / budgetGrant * budgetGrant
			if !h.budget.take(ctx, grant) {
				return errBudget
			}
			*held += grant
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
