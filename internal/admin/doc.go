// Package admin is capstan's operator surface: one http.Handler mounted at
// /admin/ by `capstan serve` whenever server.admin_token or
// server.admin_users is set, with one authentication check and one JSON
// error format for every route. It serves the admin console (the embedded
// files of ui/, see ui.go) and the JSON API the console is built on.
//
// It does HTTP only: parsing requests, checking credentials and roles,
// rendering answers. The work is done by its dependencies, each behind a
// small interface declared here (Destination, Connector, Identity,
// DeadLetters, EventReader, Previewer, Privacy, AuditLog, Explainer,
// Importer; a Destination may also be a TestSender, a RuleReporter and
// Reconciling) and wired in cmd/capstan, so that admin imports other
// packages for their types only (and the Engine* adapters, which call
// them). It keeps the console's running imports (their goroutines and
// progress) and the Live events reader.
//
// # Routes
//
//	GET    /admin/ (and /admin)                 the console's shell to a signed-in session, else the sign-in page (HTML)
//	GET    /admin/ui/{file}                     the console's files (no credential; ETag, no-cache)
//	POST   /admin/api/session                   sign in: {"token": "…"} or {"username","password"} → session (sets the cookie; no credential needed)
//	GET    /admin/api/session                   {"user","role","via": "session"|"token","csrf","expiresAt"}
//	DELETE /admin/api/session                   sign out (any role) → {"signedOut": bool}
//	GET    /admin/api/destinations              {"destinations": [destination, …]}
//	GET    /admin/api/destinations/{name}       destination: the status {"destination","state","reason","tokenExpiresAt","warning"}
//	                                            and "health" (delivering|paused|standby|degraded), "problems", "tokenDaysLeft",
//	                                            "type", "adAccount", "rules": [{"mapping","ruleId","created","name","type","campaigns","campaignsAssociated"}],
//	                                            "rateLimit": {"key","minute","perMinute","day","perDay"} (the limiter's counts for the current token),
//	                                            "retrying": {"since","status","message"} or null (failed attempts since the last accepted one)
//	PUT    /admin/api/destinations/{name}/token {"access_token": "…", "expires_at": "RFC 3339, optional"} → destination
//	POST   /admin/api/destinations/{name}/connect  → {"url": LinkedIn's authorization URL, "redirectUri", "expiresAt"} (operator)
//	GET    /admin/oauth/callback?code=&state=   LinkedIn sends the browser back here (no admin credential: see below)
//	GET    /admin/api/identity?userId=U | ?anonymousId=A   {"success": true, "profile": {…}}
//	DELETE /admin/api/identity?userId=U | ?anonymousId=A   {"success": true, "removed": ["u.…", "a.…"]}
//	GET    /admin/api/dlq?destination=&reason=&since=&after=&limit=   {"deadLetters": [...], "more": bool}, oldest first
//	GET    /admin/api/dlq/{id}                  one dead letter
//	POST   /admin/api/dlq/replay                {"ids": [N, …]} or {"destination","reason","since"} or {"all": true} → {"replayed": n}
//	GET    /admin/api/events?source=&since=&after=&before=&order=&limit=   {"events": [{"seq","source","storedAt","event"}], "more": bool}
//	POST   /admin/api/preview                   {"events": event or [events], "source": "…", "destination": "…"} → {"invalid": bool, "preview": {…}}
//	GET    /admin/api/people?userId=U | ?anonymousId=A | ?emailSha256=H   {"people": [Person, …]} (the email's ids: reads every stored event)
//	POST   /admin/api/privacy/delete            {"userId": "…"} or {"anonymousId": "…"} or {"email": "…"} or {"emailSha256": "…"} → privacy.Report (operator)
//	GET    /admin/api/audit?since=&before=&limit=   {"records": [audit.Record, …], "more": bool}, newest first
//	GET    /admin/api/live?source=&type=&event=&user=   text/event-stream: the events stored from now on (Live events)
//	GET    /admin/api/events/{seq}/explain      delivery.Explanation: the stored event and, per destination and mapping, the trigger's result, the request or why none, the delivery outcome
//	GET    /admin/api/mappings                  {"destinations": [{"destination","sources","mappings": [{"name","trigger"}]}]}
//	GET    /admin/api/stats?window=1h|24h|7d&destination=&mapping=   stats.Report (see below)
//	GET    /admin/api/dlq/count?destination=&reason=   {"count": n, "byDestination": {…}, "byReason": {…}}
//	POST   /admin/api/destinations/{name}/test-event   {"event": {…} (optional), "mapping": "NAME" (optional)} or an empty body
//	                                            → {"request": …, "status": N, "answer": …, "error"?: …} (operator, audited)
//	GET    /admin/api/destinations/{name}/rules {"rules": [report, …]} (viewer)
//	GET    /admin/api/reconcile?destination=    {"destinations": [{"destination","supported","enabled","latest","error"}]}
//	POST   /admin/api/reconcile?destination=N   reconcile N now → the reconciliation (operator)
//	GET    /admin/api/imports                   {"imports": [import, …] newest first, "sources", "maxBytes", "running", "maxRunning"}
//	POST   /admin/api/imports                   multipart/form-data upload → 202 import (operator, audited; see Imports)
//	GET    /admin/api/imports/{id}              import: {"id","file","source","event","format","map","dryRun","by","bytes","sha256",
//	                                            "state": running|done|failed|cancelled|interrupted, "startedAt","endedAt","total",
//	                                            "rows","stored","duplicates","resumed","invalid","rowsPerSecond","etaSeconds",
//	                                            "byReason","errors": [{"line","field","reason","detail","message"}] (the first 100),
//	                                            "error","cancelledBy","complete"}
//	POST   /admin/api/imports/{id}/cancel       stop a running import → import (operator, audited)
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
// # Live events and the event detail
//
// GET /admin/api/live (live.go) is a server-sent events stream: "ready"
// once set up, then one message per stored event (id: its sequence; data:
// {"seq","source","type","event","userId","anonymousId","messageId","time"}),
// "skipped" with {"skipped": N} whenever the count of events not sent to
// this stream grows, a comment every 15 s of silence, and "bye" when the
// server shuts down (Server.Shutdown, registered with the http.Server's
// RegisterOnShutdown, so that open streams do not hold the shutdown). The
// filters (source, type, event name, user as userId or anonymousId) are
// applied by the server. One shared reader serves every stream, started
// by the first and stopped when the last ends; under load it reads only
// the newest events of each poll and each stream gets at most 50 events a
// second: the rest is counted as skipped (bench/live.sh measures the cost
// for ingest). No event content is logged.
//
// GET /admin/api/events/{seq}/explain answers delivery.ExplainEvent: the
// requests are built now by the same Plan and Format as delivery and
// preview; the delivery outcome is derived from what is stored (the
// destination's durable consumer's ack floor, and the DLQ): delivered,
// pending, dead_lettered (with the dead letter's id and reason) or
// not_sent (with the reason).
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
//	401 unauthorized         no credential or a wrong one (with WWW-Authenticate: Bearer); a wrong sign-in
//	403 forbidden            the credential's role may not do this; a sign-in from another site
//	403 csrf_failed          a state-changing request with the session cookie lacks the session's X-CSRF-Token
//	429 too_many_requests    too many failed sign-ins from this address (with Retry-After); two imports running
//	404 not_found            unknown route, destination, person or dead letter
//	405 method_not_allowed   known path, other method (with Allow)
//	413 too_large            body over the route's limit (64 KiB; 1 MiB for preview; Config.ImportMaxBytes for an upload)
//	503 token_not_saved      the token is in use but could not be saved
//	503 unavailable          the engine (or the destination) refused; details are in the server log only
//	500 internal_error       a bug; details are in the server log only
//
// # Authentication and roles
//
// Each request is authenticated first (before routing, so that the routes
// are not revealed): authenticate turns the request into a principal with a
// Role. Two credentials:
//
//   - "Authorization: Bearer <admin_token>", compared in constant time
//     (crypto/subtle, over SHA-256 digests so that the length does not leak
//     either): an operator named "admin token". A request with an
//     Authorization header is judged by it alone.
//   - The console's session cookie (capstan_session: a random 256-bit id;
//     HttpOnly, SameSite=Strict, Path=/admin/, Secure under TLS or with
//     Config.SecureCookies), made by POST /admin/api/session from the admin
//     token (an operator) or a Config.Users name and bcrypt-checked
//     password (that user's role). Sessions live in memory, keyed by the
//     id's SHA-256: a restart signs everyone out. A session ends
//     SessionIdle (2 h) after its last request or SessionMax (12 h) after
//     sign-in; at most 10,000 are kept (the oldest goes). Every
//     state-changing request made with the cookie must carry the session's
//     CSRF token in X-CSRF-Token (403 csrf_failed otherwise); Bearer
//     requests need none.
//
// Sign-in is throttled by client address (the TCP peer, or the
// X-Forwarded-For client behind Config.TrustedProxies): after 10 failures
// within 15 minutes the address gets 429 with Retry-After until the window
// ends, whatever it sends; at most 10,000 addresses are remembered (beyond,
// new ones share one entry). An unknown user name costs a bcrypt
// comparison too, so timing does not tell names apart. Sign-in also
// refuses a body that is not JSON and a request a browser marks as coming
// from another site (Sec-Fetch-Site).
//
// Routes that read need a viewer; routes that change state (install a
// token, delete a person, replay dead letters, send a test event, import a
// file) need an operator (403 forbidden otherwise); signing out needs
// neither.
//
// # Audit
//
// Every state-changing route records what it did in the audit log
// (AuditLog, internal/audit) with who (the user's name or "admin token"),
// what (the action and its target: a destination, a selection of dead
// letters, the SHA-256 of a person's id), when, and how it ended (counts,
// or the error): sign_in (refused ones too, naming the user whose
// password was wrong, "admin token" or "unknown user"; attempts refused
// by the throttle are not recorded),
// sign_out, token_install, identity_delete, dlq_replay, linkedin_connect
// (by the operator who started the connection), import_start, import and
// import_cancel; privacy_delete and
// test_event are recorded by their dependencies (Privacy, TestSender). A record that cannot be written is
// logged; the action stays done.
//
// # Console
//
// The console is plain HTML, CSS and JavaScript in ui/ (no build step, no
// external resource; Content-Security-Policy allows only its own files):
// index.html (the shell), app.js (window.capstan: api, page, h, session,
// can, operatorOnly, fmt, toast, confirm), app.css, signin.html/.js, and one
// module per page under ui/pages/. A page whose module is missing shows
// "This page is not available in this build".
//
// # Imports
//
// POST /admin/api/imports (imports.go) is the console's Import page: a
// multipart/form-data form with the fields file (the CSV or JSONL file,
// required), source (required when several are configured), event, format
// (csv or jsonl; default from the file name), map (COLUMN=FIELD, repeatable
// or one a line, as `capstan import --map`) and dryRun; any other field is
// a 400. The file is streamed to a temporary file in Config.ImportDir, at
// most Config.ImportMaxBytes (413 beyond; the server's read and write
// timeouts are lifted to an hour for the upload), hashed and counted
// (importer.Scan), and its first 64 KiB are checked by a dry run, so that
// input importer.Run refuses as a whole (a UsageError: not text, empty,
// no rows, a header the mapping cannot apply to, no event name) is a 400
// with importer's message before anything is stored. Then the import runs
// in the background, through the Importer dependency (EngineImporter:
// importer.Run with the server's stream.Writer and the resume points in
// the state bucket, keyed by importer.ResumeKey of the source and the
// file's SHA-256), so it runs to the end when the client goes; the answer
// is 202 with the import, to poll. At most two run at once (429 beyond).
// The imports are kept in memory (the last 20 ended ones): a restart
// forgets them; Shutdown stops the running ones after the rows being
// stored (state "interrupted"; WaitImports waits for them) and uploading
// the same file again continues after its resume point, storing nothing
// twice. A dry run stores nothing and keeps no resume point. Each import
// is recorded in the audit log when accepted (import_start) and when it
// ends (import, with the counts, and the error when it stopped early), and
// each cancellation (import_cancel). Row details are shown to the console,
// never logged.
//
// # Connect LinkedIn
//
// POST /admin/api/destinations/{name}/connect starts LinkedIn's
// authorization-code flow (linkedin-capi.md §6.3, §24.2) for a destination
// that is a Connector: it needs the destination's auth.client_id,
// auth.client_secret and auth.redirect_uri, which must be
// https://<capstan's public address>/admin/oauth/callback and registered on
// the LinkedIn app (a 400 says exactly what to set otherwise). It keeps a
// fresh state for 10 minutes, single use, with the operator who asked, and
// answers the URL the console sends the browser to. LinkedIn sends the
// browser back to GET /admin/oauth/callback, which is served before
// authentication: the state is its credential, since the console's
// SameSite=Strict session cookie is not sent on a navigation from
// LinkedIn. An unknown, used or expired state is refused (400) and nothing
// is exchanged. Otherwise the Connector exchanges the code, checks the
// token (rw_conversions, a writing role on the ad account) and installs it
// (delivery resumes); the outcome is an audit record (linkedin_connect, by
// the operator who started it) and a small HTML page (no-store,
// Referrer-Policy no-referrer) that sends the browser on to the console's
// #/destinations page with connected=1 or connect_error=….
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
// It never logs an access token, the admin token, a password, a session
// id, a user id, an email or an event body: its logs name the destination,
// counts and the principal. It never talks to LinkedIn itself (a test
// event goes through its destination), and never reads the engine or the
// identity graph except through its dependencies.
package admin
