// Package linkedin turns the action fields of Segment's "Stream Conversion
// Event" action into LinkedIn Conversions API requests, and classifies
// LinkedIn's answers.
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
// Everything here is pure: no network, no goroutines, no clock (callers pass
// now), no package-level mutable state. All functions are safe for concurrent
// use.
//
// This package never imports internal/mapping (it takes map[string]any) and
// never imports or shares code with internal/sandbox: the sandbox is the
// independent referee this package is tested against, so each side implements
// LinkedIn's validation rules on its own, from the spec.
package linkedin
