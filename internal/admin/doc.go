// Package admin is capstan's operator surface: one http.Handler mounted at
// /admin/ by `capstan serve` whenever server.admin_token is set, with one
// authentication check and one JSON error format for every route. It is the
// JSON API the console is built on.
//
// It does HTTP only: parsing requests, checking credentials and roles,
// rendering answers. The work is done by its dependencies, each behind a
// small interface declared here (Destination, Identity, DeadLetters,
// EventReader, Previewer, Privacy, AuditLog) and wired in cmd/capstan, so
// that admin imports other packages for their types only.
//
// # Routes
//
//	GET    /admin/api/destinations              {"destinations": [status, …]}
//	GET    /admin/api/destinations/{name}       status: {"destination","state","reason","tokenExpiresAt","warning"}
//	PUT    /admin/api/destinations/{name}/token {"access_token": "…", "expires_at": "RFC 3339, optional"} → status
//	GET    /admin/api/identity?userId=U | ?anonymousId=A   {"success": true, "profile": {…}}
//	DELETE /admin/api/identity?userId=U | ?anonymousId=A   {"success": true, "removed": ["u.…", "a.…"]}
//	GET    /admin/api/dlq?destination=&reason=&since=&after=&limit=   {"deadLetters": [...], "more": bool}, oldest first
//	GET    /admin/api/dlq/{id}                  one dead letter
//	POST   /admin/api/dlq/replay                {"ids": [N, …]} or {"destination","reason","since"} or {"all": true} → {"replayed": n}
//	GET    /admin/api/events?source=&since=&after=&before=&order=&limit=   {"events": [{"seq","source","storedAt","event"}], "more": bool}
//	POST   /admin/api/preview                   {"events": event or [events], "source": "…", "destination": "…"} → {"invalid": bool, "preview": {…}}
//	POST   /admin/api/privacy/delete            {"userId": "…"} or {"anonymousId": "…"} or {"email": "…"} → privacy.Report (operator)
//	GET    /admin/api/audit?since=&limit=       {"records": [audit.Record, …]}, newest first
//	GET    /admin/api/stats?window=1h|24h|7d&destination=&mapping=   stats.Report (see below)
//	GET    /admin/api/dlq/count?destination=&reason=   {"count": n, "byDestination": {…}, "byReason": {…}}
//
// The paths of earlier releases still work and reach the same handlers:
// PUT /admin/destinations/{name}/token and GET|DELETE /admin/identity.
//
// Query parameters and body fields are checked strictly: an unknown one is
// a 400 naming it. since is an RFC 3339 time or a duration before now
// ("10m", "24h"); limit is 1 to 1000 (default 100); after and before are
// stream sequences (exclusive) for paging; order is "newest" (the default)
// or "oldest". more says whether the selection holds more than the page.
// Identity answers keep the "success": true of the earlier handler.
//
// The statistics (internal/stats, durable: they survive restarts) answer,
// for the window (default 1h) and per destination and mapping, the funnel
// {"received","matched","valid","delivered","deadLettered"}, the outcomes
// of events that became no conversion, match coverage
// {"li_fat_id","email","both","neither"} (delivered conversions by the
// identifiers they carried), latency {"count","p50","p95"} in seconds
// (event stored → accepted by the destination) and a series of points
// {"t","received","matched","delivered","deadLettered"}, each a count over
// stepSeconds (60, 900 or 3600). A destination's counts from matched on
// are conversions (summed over its mappings). mapping needs destination;
// an unknown one is a 404. dlq/count reads the DLQ stream's per-subject
// counts, not the dead letters, so the console polls it for its
// navigation count.
//
// # Errors
//
// Every error, on every route, is one JSON document:
//
//	{"error": {"code": "not_found", "message": "no such destination \"facebook\""}}
//
// with Content-Type application/json and these statuses and codes:
//
//	400 bad_request          a parameter or the body is wrong; the message says which and why
//	401 unauthorized         no credential or a wrong one (with WWW-Authenticate: Bearer)
//	403 forbidden            the credential's role may not do this
//	404 not_found            unknown route, destination, person or dead letter
//	405 method_not_allowed   known path, other method (with Allow)
//	413 too_large            body over the route's limit (64 KiB; 1 MiB for preview)
//	503 token_not_saved      the token is in use but could not be saved
//	503 unavailable          the engine (or the destination) refused; details are in the server log only
//	500 internal_error       a bug; details are in the server log only
//
// # Authentication and roles
//
// Each request is authenticated first (before routing, so that the routes
// are not revealed): authenticate turns the request into a principal with a
// Role. Today the one credential is "Authorization: Bearer <admin_token>",
// compared in constant time (crypto/subtle, over SHA-256 digests so that
// the length does not leak either), and it is an operator. Routes that read
// need a viewer; routes that change state (install a token, delete a
// person, replay dead letters) need an operator. A session cookie and user
// roles (viewer or operator) can be added to authenticate without touching
// the routes.
//
// # What it must never do
//
// It never logs an access token, the admin token, a user id, an email or an
// event body: its logs name the destination, counts and the principal. It
// never talks to LinkedIn, and never reads the engine or the identity graph
// except through its dependencies.
package admin
