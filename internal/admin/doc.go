// Package admin is capstan's operator surface: one http.Handler mounted at
// /admin/ by `capstan serve` whenever server.admin_token is set, with one
// authentication check and one JSON error format for every route. It is the
// JSON API the console is built on.
//
// It does HTTP only: parsing requests, checking credentials and roles,
// rendering answers. The work is done by its dependencies, each behind a
// small interface declared here (Destination, Connector, Identity,
// DeadLetters, EventReader, Previewer, Privacy, AuditLog) and wired in cmd/capstan, so
// that admin imports other packages for their types only.
//
// # Routes
//
//	GET    /admin/api/destinations              {"destinations": [status, …]}
//	GET    /admin/api/destinations/{name}       status: {"destination","state","reason","tokenExpiresAt","warning"}
//	PUT    /admin/api/destinations/{name}/token {"access_token": "…", "expires_at": "RFC 3339, optional"} → status
//	POST   /admin/api/destinations/{name}/connect  → {"url": LinkedIn's authorization URL, "redirectUri", "expiresAt"} (operator)
//	GET    /admin/oauth/callback?code=&state=   LinkedIn sends the browser back here (no admin credential: see below)
//	GET    /admin/api/identity?userId=U | ?anonymousId=A   {"success": true, "profile": {…}}
//	DELETE /admin/api/identity?userId=U | ?anonymousId=A   {"success": true, "removed": ["u.…", "a.…"]}
//	GET    /admin/api/dlq?destination=&reason=&since=&after=&limit=   {"deadLetters": [...], "more": bool}, oldest first
//	GET    /admin/api/dlq/{id}                  one dead letter
//	POST   /admin/api/dlq/replay                {"ids": [N, …]} or {"destination","reason","since"} or {"all": true} → {"replayed": n}
//	GET    /admin/api/events?source=&since=&after=&before=&order=&limit=   {"events": [{"seq","source","storedAt","event"}], "more": bool}
//	POST   /admin/api/preview                   {"events": event or [events], "source": "…", "destination": "…"} → {"invalid": bool, "preview": {…}}
//	POST   /admin/api/privacy/delete            {"userId": "…"} or {"anonymousId": "…"} or {"email": "…"} → privacy.Report (operator)
//	GET    /admin/api/audit?since=&limit=       {"records": [audit.Record, …]}, newest first
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
// person, replay dead letters) need an operator. A session cookie and user
// roles (viewer or operator) can be added to authenticate without touching
// the routes.
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
// # What it must never do
//
// It never logs an access token, the admin token, a user id, an email or an
// event body: its logs name the destination, counts and the principal. It
// never talks to LinkedIn, and never reads the engine or the identity graph
// except through its dependencies.
package admin
