// Package identity is capstan's first-party identity graph: it captures the
// LinkedIn click id li_fat_id and the user's email from events, links
// anonymousId, userId, alias and group ids, and enriches conversions whose
// event lacks them.
//
// Capture (capture.go) is pure: it reads a parsed event and says which
// identifiers it carries and where it found them. The graph (Graph) keeps
// its profiles in a Store (store.go), one of two:
//
//   - the JetStream KV bucket "identity" (stream.IdentityKV), on an
//     external cluster, shared by every capstan replica (identity.store
//     jetstream, the default with engine.nats_url);
//   - the local store (Local, local.go): a pebble database in
//     <data_dir>/identity, owned by the process that runs the embedded
//     engine (identity.store local, the default without nats_url). The
//     bucket's file store keeps an index entry in memory for every key
//     (~170-330 bytes per new visitor: 293 MB of a 615 MB heap after a
//     million new visitors, gigabytes at tens of millions); the local store
//     keeps only a bounded cache (32 MiB) and the files on disk grow.
//     Tools attached to the running capstan (`capstan identity`, privacy
//     deletes, preview) reach it through that process (Remote, Serve,
//     remote.go); a data directory whose graph is still in the bucket has
//     it moved into the local store once (MigrateBucket).
//
// What the graph does:
//
//   - Observe, once per event before conversion (and never for an event
//     whose consent denies the destination), links the ids and records the
//     newest li_fat_id and email hash, each with its event's time;
//   - Enrich fills what a conversion's event lacks, as the event's source
//     sees the graph (trusted links, and its own unverified ones), so that
//     a server-side event carrying only a userId gets the click id of the
//     browser's earlier anonymous page view and the email of an earlier
//     identify;
//   - Show and Delete serve privacy requests (also through the admin API and
//     `capstan identity show|delete`).
//
// # Keys and values
//
// One key per id, holding that id's profile as JSON (the local store keys
// it by the kind byte and the 32 bytes of the hash, and prefixes the value
// with its revision and write time):
//
//	u.<sha256(userId)>       a user id's profile
//	a.<sha256(anonymousId)>  an anonymous id's profile
//
// where sha256 is the lower-case hex SHA-256 of the id as sent (numbers in
// their JSON text), so that no id appears in clear in a key name (keys show
// in `nats kv ls`, subjects and advisories); an operator finds a key with
// `printf %s "$ID" | sha256sum`. A profile holds:
//
//	{"lfi":"…","lfiAt":ms,            newest li_fat_id and its event time
//	 "emailSha256":"…","emailAt":ms,  newest email, only as its normalised SHA-256
//	 "links":["a.…","u.…"],           linked keys, oldest first (see below)
//	 "aliasOf":"u.…",                 user this user id was aliased to
//	 "groups":["org_1"],              groupIds of group calls
//	 "first":ms,                      creation time
//	 "scoped":{"website":{…}}}        per browser source, what its unverified
//	                                  events taught (the fields above)
//
// The fields outside "scoped" are the trusted part, written by server
// sources' events and by browser events whose userId identity verification
// vouched for; they serve every source's conversions. A browser source's
// unverified event that names a userId writes the part kept for that source
// instead, which serves only that source's conversions (trust.go explains
// why: a browser source's write key is public). Profiles written before
// "scoped" existed are entirely trusted.
//
// Links are kept on both sides: a user lists its anonymous ids ("a.…") and
// the user ids aliased into it ("u.…"); an anonymous id lists its users,
// the last one current; an aliased user id names its new id in aliasOf.
// Nothing else about a person is stored: no raw ids, no email, no names.
//
// What a profile learns passes one hop on when it is written: an anonymous
// id's capture to its current user, an aliased id's to its new id, and an
// identify copies the anonymous id's into the user. So Enrich usually finds
// everything in the user's profile with one read, and falls back to the
// anonymous id and one hop of links otherwise.
//
// # Concurrency, cost and TTL
//
// Every write is a compare-and-set on the key's revision (KV Create/Update
// semantics; in the local store, a per-key lock of the owning process
// around a read and a write, the revision counting the key's writes),
// retried a bounded number of times on conflict, so concurrent Observes,
// in one process or several, lose no link and no identifier. The
// merge of identifiers is "newest event time wins", so the outcome does not
// depend on the order in which events are observed, and observing an event
// again writes nothing. An event with nothing new costs one read per id and
// no write, and no read at all when this process met the ids in the last
// few seconds (memo.go: the pages of one visit). An id this process never
// met is created without a read (seen.go: on a landing page most visitors
// are new); if it existed after all, the create fails and the profile is
// read, so the guess costs time, never data.
//
// The TTL (the bucket's max age; in the local store, each value's write
// time; default 90 days, LinkedIn's look-back) applies to each profile from
// its last write; activity on an id rewrites its profile at most once per
// Config.Refresh (a day), restarting its TTL. The local store hides an
// expired profile from reads at once and a periodic sweep (every TTL/16, at
// most daily) deletes it from disk. Delete purges the keys' messages from
// the bucket's stream, leaving not even a delete marker; in the local store
// it deletes the keys (fsynced) and compacts their key ranges, since pebble
// drops a deleted value from its files only when a compaction reaches it.
//
// Durability: the bucket with the embedded engine uses asynchronous
// persistence (Config.Async), and the local store's writes do not wait for
// the disk (pebble.NoSync). pebble keeps such writes in a buffer of its
// own until a 32 KiB block of its log fills, not in the operating system's
// cache, so the store writes its log out and fsyncs it every 100 ms while
// there are writes (Local's syncer): a kill -9 or a power loss loses at
// most the graph updates of the last 100 ms, never an event
// (TestLocalSurvivesCrash). The graph is derived data, rebuilt from events
// as they come.
// Backups hold the local store as a pebble checkpoint (capstan backup).
//
// identity reads events through internal/event's Value (the one parsed
// form of an event in capstan) and knows nothing of HTTP ingest or
// LinkedIn's API: email hashing is injected (Config.HashEmail).
package identity
