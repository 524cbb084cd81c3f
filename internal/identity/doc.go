// Package identity is capstan's first-party identity graph: it captures the
// LinkedIn click id li_fat_id and the user's email from events, links
// anonymousId, userId, alias and group ids, and enriches conversions whose
// event lacks them.
//
// Capture (this file's first half) is pure: it reads a parsed event and says
// which identifiers it carries and where it found them. The graph itself
// lives in the JetStream KV bucket "identity"; it stores email only as its
// normalised SHA-256, never in clear.
//
// identity reads events through internal/mapping's Value (the one parsed
// form of an event in capstan) and knows nothing of HTTP or LinkedIn's API.
package identity
