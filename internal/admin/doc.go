// Package admin is capstan's operator surface: one http.Handler mounted at
// /admin/ by `capstan serve` whenever server.admin_token is set, with one
// authentication check and one JSON error format for every route. It is the
// JSON API the console is built on.
//
// It does HTTP only: parsing requests, checking credentials and roles,
// rendering answers. The work is done by its dependencies, each behind a
// small interface declared here (Destination, Identity, DeadLetters,
// EventReader, Previewer, Privacy, AuditLog; a Destination may also be a
// TestSender, a RuleReporter and Reconciling) and wired in cmd/capstan, so
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
//	POST   /admin/api/destinations/{name}/test-event   {"event": {…} (optional), "mapping": "NAME" (optional)} or an empty body
//	                                            → {"request": …, "status": N, "answer": …, "error"?: …} (operator, audited)
//	GET    /admin/api/destinations/{name}/rules {"rules": [report, …]} (viewer)
//	GET    /admin/api/reconcile?destination=    {"destinations": [{"destination","supported","enabled","latest","error"}]}
//	POST   /admin/api/reconcile?destination=N   reconcile N now → the reconciliation (operator)
//
// test-event is a REAL SEND of one conversion through the destination's own
// path (TestSender): the mapping's built-in sample event, or the given one,
// through the trigger, the fields, enrichment and validation, then the
// destination's client with its current token and its place in the rate
// limits. The answer is 200 whatever LinkedIn said: "status" is LinkedIn's
// HTTP status (0 when nothing was sent), "answer" its status, id headers
// (X-Li-Uuid, X-Restli-Id) and body, "error" why the conversion was refused
// (by LinkedIn, or before sending, with "code": NOT_MATCHED, NO_MAPPING,
// NO_SAMPLE, FILTERED, NOT_READY, or the validation's code and "fields"),
// plus "realSend", "apiBase", "destination", "mapping", "rule", "event"
// and "enriched". Each send is recorded in the audit log (action
// "test_event", with the principal, destination, mapping, rule and HTTP
// status). rules reads each mapping's conversion rule from LinkedIn
// (RuleReporter): "ruleId", "status" (receiving, stale, unverified,
// disabled, not_capi, not_created, unknown), "noCampaigns", "verdict",
// "differs" (configured options the live rule lacks), "error", and "rule"
// with LinkedIn's fields (enabled, lastCallbackAt,
// latestFirstPartyCallbackAt, campaigns, associatedCampaigns with
// associatedAt, created, lastModified, …; linkedin-capi.md §22). A
// destination without these abilities answers 503 unavailable.
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
// person, replay dead letters, send a test event) need an operator. A session cookie and user
// roles (viewer or operator) can be added to authenticate without touching
// the routes.
//
// # Reconciliation
//
// GET /admin/api/reconcile shows, per destination, the latest
// reconciliation `capstan serve` made (every reconcile.interval, first a
// minute after the start; latest is null before it): per conversion rule and
// UTC day, accepted (conversions LinkedIn accepted), reported (what
// adAnalytics reports; null when it could not be read), ratio, collisions
// (eventId collisions, the console's mark for them) and state
// ("processing" within 72 h of the day's latest send, never flagged;
// "mature"), and per rule flag ("nothing_reported", "low_ratio") with
// reason. missingScope names the scope the token lacks ("r_ads_reporting")
// and error says how to get it; delivery is unaffected. POST runs one now
// (operator: it calls LinkedIn). The shape is documented in docs/reconcile.md.
//
// # What it must never do
//
// It never logs an access token, the admin token, a user id, an email or an
// event body: its logs name the destination, counts and the principal. It
// never talks to LinkedIn itself (a test event goes through its
// destination), and never reads the engine or the identity graph except
// through its dependencies.
package admin
