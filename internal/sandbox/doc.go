// Package sandbox is capstan's LinkedIn API simulator: an http.Handler that
// serves the part of LinkedIn's REST and OAuth surface that capstan uses
// (conversion events single and BATCH_CREATE, conversion rules, campaign
// association, ad accounts, account users, campaigns, /rest/me, conversion
// reporting (adAnalytics, reporting.go: a deterministic model of matching,
// attribution and the reporting delay, spec §21.10), token refresh,
// the consent page with Allow and Cancel and the code exchange,
// introspection), with LinkedIn's validation,
// status codes, error bodies, rate limits and eventId de-duplication, as
// written in shared/spec/linkedin-capi.md (§18 lists what it reproduces).
//
// It is the independent referee of capstan's LinkedIn client: it must never
// import internal/linkedin nor share validation code with it. Everything
// here is written from the spec.
//
// Besides LinkedIn's endpoints it serves an inspection and control API under
// /_sandbox/ (accepted conversions, request log, counters, state, tokens,
// clock, fault injection, reporting model, consent settings, reset);
// docs/sandbox.md documents it.
//
// Use:
//
//	srv, err := sandbox.New(sandbox.Config{Now: clock.Now, Tokens: []sandbox.TokenSpec{{Token: "t"}}}, log)
//	ts := httptest.NewServer(srv.Handler())
//	defer ts.Close()
//	defer srv.Close() // releases requests held by hang faults
//
// or srv.Run(ctx, "127.0.0.1:8090") / srv.Serve(ctx, ln), which also keep
// the optional state file.
//
// Where the spec leaves a choice open (marked [P] there), the sandbox picks
// what the comment at the relevant code says; the main ones:
//   - API versions: a version is active from its release to the 15th of the
//     same month a year later; "released" means not after
//     max(Config.LatestVersion, the clock's month), so the pinned 202609
//     works with the spec's example clock (2026-01-01).
//   - De-duplication (spec §16): an event repeating the rule and eventId of
//     an event accepted within Config.DedupWindow (48 h) is answered 201 but
//     stored as a duplicate (Conversion.DuplicateOf) and left out of
//     /_sandbox/conversions. The key includes the rule because one Segment
//     event may legitimately feed two rules with the same eventId. Reports
//     (adAnalytics) still count such repeats unless
//     Reporting.DedupEventIDWindow is set (spec §21.10 item 4: off by
//     default).
//   - Rate limits: refused (429) requests do not consume quota.
//   - An explicit JSON null in an event is a type error (for example
//     "null is not backed by a String"), as Rest.li treats it.
//   - Bodies of accepted events are kept exactly as received, including the
//     tolerated urn:li:llaPartnerConversion namespace; Conversion.Rule holds
//     the normalised rule id.
//
// POST /rest/conversionEvents reads well-formed bodies (the shapes capstan
// sends) on a fast path, fastEvents, that gives up on anything unusual and
// leaves it to the generic path, which produces every error; tests and the
// fuzz target hold the two paths to the same answers and records.
//
// All Server methods are safe for concurrent use. Memory is bounded: the
// kept conversions, the de-duplication set and the request log each have a
// maximum size (Config).
package sandbox
