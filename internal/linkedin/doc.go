// Package linkedin turns the action fields of Segment's "Stream Conversion
// Event" action into LinkedIn Conversions API requests, sends them,
// classifies LinkedIn's answers, and manages what sending needs: the OAuth
// token, conversion rules and campaign associations.
//
// Its job, in event order:
//
//   - [Fields], [DefaultFields] and [DefaultMapping] describe the action fields
//     and their Segment default mappings (spec linkedin-capi.md §20.1), so that
//     internal/config can fill keys left out of capstan's YAML.
//   - [BuildConversion] (or a configured [Builder]) takes one event's action
//     fields, as produced by internal/mapping and converted to plain Go values
//     (map[string]any, []any, string, json.Number, bool, nil), normalises and
//     hashes the identifiers (§15), converts the timestamp (§20.2), validates
//     everything with the exact messages of §20.3 plus capstan's local copies of
//     LinkedIn's 400/422 rules (§8.2, §10), and returns a [Conversion] ready to
//     encode, or a *[ValidationError].
//   - [NewSingleRequest] and [NewBatchRequests] encode conversions into the
//     exact HTTP requests LinkedIn expects (§3, §8, §9, §17.4). `capstan
//     preview` prints them (tokens always redacted) and internal/delivery
//     sends them.
//   - [Classify] maps a LinkedIn response to what delivery must do next
//     (§17.1): success, retry, split, dead-letter, auth, pause.
//
// All of the above is pure: no network, no goroutines, no clock (callers pass
// now), no package-level mutable state. All functions are safe for concurrent
// use.
//
// The HTTP half is the [Client] (one per destination, built by [NewClient]
// with an *http.Client from [NewHTTPClient]):
//
//   - [Client.Send] sends a [Request] with the client's headers and current
//     token, drains and closes the body, and returns [Classify]'s [Outcome];
//     it refreshes an expired token once, single-flight across concurrent
//     senders (§6.4–§6.6, §17.3), and reports new tokens through
//     [ClientConfig.OnRefresh] so delivery can persist them.
//   - [Client.CheckToken] checks the token (§14.1); [Client.CreateRule],
//     [Client.GetRule], [Client.ListRules], [Client.UpdateRule] and
//     [Client.EnsureRule] manage conversion rules (§12, the onMappingSave hook
//     of §20.1); [Client.AssociateCampaigns] and [Client.ListCampaigns] handle
//     campaigns (§13, §14.3). Their failures are *[APIError] (and *[HookError]
//     with §20.3's messages for the hook).
//   - [Client.ConversionReport] reads adAnalytics (§21: pivot CONVERSION,
//     DAILY, the query built by hand in Rest.li syntax, ranges of at most 31
//     days, §21.4's decoding rules); a token without r_ads_reporting gives a
//     *[ReportingScopeError] matching [ErrReportingScope].
//
// The Client starts no goroutines, never logs tokens, client secrets or
// request bodies, and is safe for concurrent use.
//
// This package never imports internal/mapping (it takes map[string]any) and
// never imports or shares code with internal/sandbox: the sandbox is the
// independent referee this package is tested against, so each side implements
// LinkedIn's validation rules on its own, from the spec.
package linkedin
