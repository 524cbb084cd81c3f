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
//     keeps tokens obtained at run time in the state bucket, encrypted
//     with server.secret_key (package secret; a plaintext value an older
//     version saved is read and written again encrypted; Reseal changes
//     keys), and installs an operator's token (InstallToken);
//   - access checks (access.go): CheckAccess, run by Prepare at start and
//     by the runner daily (delivery.AccessChecker), finds a missing token,
//     an expired or revoked one, a missing scope or a missing role on the
//     ad account and answers a *linkedin.AccessError that pauses the
//     destination with what to fix;
//   - connecting (connect.go): StartConnect and FinishConnect run LinkedIn's
//     authorization-code flow for `capstan auth linkedin` and the console;
//     SaveConnectedToken stores the tokens where New reads them, and
//     WatchToken puts tokens stored by another process in use at once.
//
// It holds no delivery logic of its own: batching, retries, splits, the DLQ
// and the rate limits are package delivery's.
package linkedin
