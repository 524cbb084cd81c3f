package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AuditEntry is one record of the AUDIT stream: what an operator did,
// stored on audit.<action>. The document's format is internal/audit's.
type AuditEntry struct {
	// Seq is the AUDIT stream sequence (set when read).
	Seq uint64
	// Action names what was done ("privacy_delete"): a subject token.
	Action string
	// StoredAt is when the stream stored it (set when read).
	StoredAt time.Time
	// Doc is the record's JSON document.
	Doc []byte
}

// ensureAudit creates the AUDIT stream when missing. Audit records are
// kept until an operator removes them (no age or size limit).
func (e *Engine) ensureAudit(ctx context.Context) (jetstream.Stream, error) {
	cctx, cancel := createContext(ctx) // never abandoned half-way (see KV)
	defer cancel()
	s, err := e.js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:        AuditStream,
		Description: "What operators did: privacy deletions (capstan)",
		Subjects:    []string{AuditSubject + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Replicas:    e.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", AuditStream, err)
	}
	return s, nil
}

// AppendAudit stores a record durably (Sync) in the AUDIT stream.
func (e *Engine) AppendAudit(ctx context.Context, a AuditEntry) error {
	if !validToken(a.Action) {
		return fmt.Errorf("append to %s: action %q is not a subject token", AuditStream, a.Action)
	}
	if _, err := e.ensureAudit(ctx); err != nil {
		return err
	}
	if _, err := e.js.Publish(ctx, AuditSubject+"."+a.Action, a.Doc); err != nil {
		return fmt.Errorf("append to %s: %w", AuditStream, err)
	}
	if err := e.Sync(ctx, AuditStream); err != nil {
		return fmt.Errorf("append to %s: %w", AuditStream, err)
	}
	return nil
}

// ReadAudit calls fn for each audit record stored at or after since (zero:
// all), oldest first. It stops at the first error fn returns. Without an
// AUDIT stream (nothing recorded yet) it calls fn never.
func (e *Engine) ReadAudit(ctx context.Context, since time.Time, fn func(AuditEntry) error) error {
	if _, err := e.js.Stream(ctx, AuditStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return e.read(ctx, AuditStream, readSpec{since: since}, func(m rawMessage) error {
		a := AuditEntry{Seq: m.Seq, StoredAt: m.Time, Doc: m.Data}
		if len(m.Subject) > len(AuditSubject)+1 {
			a.Action = m.Subject[len(AuditSubject)+1:]
		}
		return fn(a)
	})
}
