// Package audit keeps the durable record of what operators did (privacy
// deletions, token installs, identity deletions, dead-letter replays, test
// events, console sign-ins and sign-outs, LinkedIn connections, console
// imports), in the AUDIT stream: the one place that appends and reads it,
// for the CLI, the admin API and the console.
//
// A record names the person only by the SHA-256 of the id given, never the
// id itself.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// Actions.
const (
	// ActionPrivacyDelete is a privacy deletion (capstan privacy delete,
	// POST /admin/api/privacy/delete).
	ActionPrivacyDelete = "privacy_delete"
	// ActionSignIn is a console sign-in (POST /admin/api/session); Error
	// is set when the credential was wrong, and By is then the user whose
	// password was wrong, "admin token", or "unknown user" (a name no user
	// has is never recorded: it may be a mistyped password).
	ActionSignIn = "sign_in"
	// ActionSignOut is a console sign-out (DELETE /admin/api/session).
	ActionSignOut = "sign_out"
	// ActionTokenInstall is a new access token installed for a
	// destination (Target) by the admin API.
	ActionTokenInstall = "token_install"
	// ActionIdentityDelete is an identity graph deletion (DELETE
	// /admin/api/identity).
	ActionIdentityDelete = "identity_delete"
	// ActionDLQReplay is a dead-letter replay (POST /admin/api/dlq/replay);
	// Target says which, Result["replayed"] how many.
	ActionDLQReplay = "dlq_replay"
	// ActionTestEvent is a conversion sent for real as a test (capstan
	// test-event, POST /admin/api/destinations/{name}/test-event, the
	// console's event tester); Target names the destination, mapping and
	// rule, Result["httpStatus"] LinkedIn's status, Error the refusal.
	ActionTestEvent = "test_event"
	// ActionLinkedInConnect is a LinkedIn destination (Target) connected
	// with new tokens (capstan auth linkedin, the console's Connect
	// LinkedIn); Detail says what the token may do.
	ActionLinkedInConnect = "linkedin_connect"
	// ActionImportStart is a file uploaded to the console's Import page
	// and accepted (POST /admin/api/imports); Target names the file, its
	// source and the first hex digits of its SHA-256, Result["rows"] how
	// many rows it holds.
	ActionImportStart = "import_start"
	// ActionImport is the end of a console import: Result counts the rows
	// read, stored, duplicates, already imported (resumed) and invalid;
	// Error says why it stopped early (cancelled, interrupted, failed).
	ActionImport = "import"
	// ActionImportCancel is a console import cancelled by By (POST
	// /admin/api/imports/{id}/cancel).
	ActionImportCancel = "import_cancel"
)

// Record is one audit record.
type Record struct {
	// Seq is the AUDIT stream sequence (set when read).
	Seq uint64 `json:"seq,omitempty"`
	// At is when it was done.
	At time.Time `json:"at"`
	// By is who did it: "cli" for the command line, or the admin API's
	// principal ("admin token").
	By string `json:"by"`
	// Action is one of the Action* constants.
	Action string `json:"action"`
	// Target is what the action was done to, when not a person: a
	// destination's name, a selection of dead letters. Never a secret or
	// personal data.
	Target string `json:"target,omitempty"`
	// IDKind is the kind of id the request named: "userId",
	// "anonymousId" or "email".
	IDKind string `json:"idKind,omitempty"`
	// IDSHA256 is the lower-case hex SHA-256 of that id (an email trimmed
	// and lower-cased first); the id itself is never recorded.
	IDSHA256 string `json:"idSha256,omitempty"`
	// Result holds the counts of what was done, by name
	// ("graphKeysRemoved", "eventsDeleted", "deadLettersDeleted",
	// "suppressed").
	Result map[string]int `json:"result,omitempty"`
	// Detail says what was done, never with a secret ("ad account
	// 508747394 (ACCOUNT_MANAGER), scopes r_ads,rw_conversions").
	Detail string `json:"detail,omitempty"`
	// Error is set when the action failed or was refused (a wrong
	// credential); when it failed part way, Result counts what was done
	// before.
	Error string `json:"error,omitempty"`
}

// Append stores r durably.
func Append(ctx context.Context, eng *stream.Engine, r Record) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	return eng.AppendAudit(ctx, stream.AuditEntry{Action: r.Action, Doc: doc})
}

// Read returns the records stored at or after since (zero: all), newest
// first, at most limit (0: all).
func Read(ctx context.Context, eng *stream.Engine, since time.Time, limit int) ([]Record, error) {
	return ReadBefore(ctx, eng, since, 0, limit)
}

// ReadBefore is Read of the records whose sequence is below before (0: no
// bound): the next page of newest-first records is before the last one's
// Seq.
func ReadBefore(ctx context.Context, eng *stream.Engine, since time.Time, before uint64, limit int) ([]Record, error) {
	var out []Record
	err := eng.ReadAudit(ctx, since, func(a stream.AuditEntry) error {
		if before > 0 && a.Seq >= before {
			return nil
		}
		var r Record
		if err := json.Unmarshal(a.Doc, &r); err != nil {
			r = Record{Action: a.Action, At: a.StoredAt, Error: "unreadable audit record: " + err.Error()}
		}
		r.Seq = a.Seq
		out = append(out, r)
		if limit > 0 && len(out) > limit {
			out = out[1:]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit records: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}
