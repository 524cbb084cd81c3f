// Package linkedin is delivery's adapter for the LinkedIn Conversions API:
// the only place where package delivery meets package linkedin (imported
// here as capi). It implements delivery's destination contract:
//
//   - Format: a mapping's output becomes a validated conversion (the
//     identity graph's li_fat_id and email hash fill what the event lacks)
//     and conversions become single or BATCH_CREATE requests, grouped per
//     rule and mapping batch size (linkedin-capi.md §8, §9, §17.4);
//   - Destination: sends through the API client (token refresh and the
//     revoked-token retry inside it), maps LinkedIn's answer classes onto
//     delivery's, keys the rate limiter by access token (§11), creates
//     conversion rules and associates campaigns before delivering (Prepare),
//     with the rule options of conversion_rule.create (value_type, value,
//     enabled sent on creation and set on an existing rule by a logged
//     PARTIAL_UPDATE; auto_association_type ALL_CAMPAIGNS at creation
//     only), keeps tokens obtained at run time in the state bucket, encrypted
//     with server.secret_key (package secret; a plaintext value an older
//     version saved is read and written again encrypted; Reseal changes
//     keys), and installs an operator's token (InstallToken);
//   - Keyed (keyed.go): a conversion's eventId collision key is its rule and
//     eventId, its content hash covers everything sent; a collision is sent
//     under "<eventId>-<8 hex of content>", within 64 characters (§16, §23).
//
// reconcile.go compares LinkedIn's conversion report (adAnalytics, §21)
// with delivery's Ledger of accepted conversions per rule and UTC day:
// Reconcile (capstan reconcile), Reconciler (capstan serve, periodic, with
// capstan_reconcile_* metrics) and RuleMappings (rule ids from the
// configuration and the state bucket).
//
// SendTest (testevent.go) sends one test conversion through the client and
// returns the request and LinkedIn's raw answer (capstan test-event, the
// console); RuleReports (rulestatus.go) reads each mapping's rule with its
// status fields (linkedin-capi.md §22) and derives its status and verdict
// (capstan rules list, the console).
//
// It holds no delivery logic of its own: batching, retries, splits, the DLQ
// and the rate limits are package delivery's.
package linkedin
