package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrBadKey means a Key names neither or both of its ids.
var ErrBadKey = errors.New("give exactly one of userId and anonymousId")

// Key names a person for Show and Delete: exactly one of the fields.
type Key struct {
	UserID      string
	AnonymousID string
}

// kvKey returns the profile key of k.
func (k Key) kvKey() (string, error) {
	switch {
	case k.UserID != "" && k.AnonymousID == "":
		return UserKey(k.UserID), nil
	case k.AnonymousID != "" && k.UserID == "":
		return AnonymousKey(k.AnonymousID), nil
	}
	return "", ErrBadKey
}

// Kinds of profiles.
const (
	KindUser      = "user"
	KindAnonymous = "anonymous"
)

// Profile is what the graph stores about one id, for privacy requests and
// operators: the email appears only as its SHA-256 and linked ids only as
// their keys (the graph stores nothing more).
type Profile struct {
	// Key is the KV key: "u." or "a." and the SHA-256 (hex) of the id.
	Key string `json:"key"`
	// Kind is "user" or "anonymous".
	Kind string `json:"kind"`
	// LiFatID is the newest captured LinkedIn click id, LiFatIDAt the time
	// of the event that carried it.
	LiFatID   string    `json:"liFatId,omitempty"`
	LiFatIDAt time.Time `json:"liFatIdAt,omitzero"`
	// EmailSHA256 is the normalised SHA-256 of the newest email.
	EmailSHA256 string    `json:"emailSha256,omitempty"`
	EmailAt     time.Time `json:"emailAt,omitzero"`
	// Links are the keys of linked profiles, oldest first: a user's
	// anonymous ids and aliased user ids, an anonymous id's users (the last
	// one current).
	Links []string `json:"links,omitempty"`
	// AliasOf is the key of the user this user id was aliased to.
	AliasOf string `json:"aliasOf,omitempty"`
	// Groups are the groupIds of the id's group calls.
	Groups []string `json:"groups,omitempty"`
	// Created is when the profile was first written, Updated when last
	// (its TTL counts from there), Expires when it goes without activity.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Expires time.Time `json:"expires"`
	// Revision is the KV revision.
	Revision uint64 `json:"revision"`
	// Unverified holds, by browser source, what that source's unverified
	// events taught the graph about the id (identity verification): it
	// enriches only that source's own conversions.
	Unverified map[string]Unverified `json:"unverified,omitempty"`
	// Linked are the profiles that Links and AliasOf name and that exist,
	// those of Unverified included (one hop; their own Linked is empty).
	Linked []Profile `json:"linked,omitempty"`
}

// Unverified is what one browser source's unverified events taught a
// profile; the fields are those of Profile.
type Unverified struct {
	LiFatID     string    `json:"liFatId,omitempty"`
	LiFatIDAt   time.Time `json:"liFatIdAt,omitzero"`
	EmailSHA256 string    `json:"emailSha256,omitempty"`
	EmailAt     time.Time `json:"emailAt,omitzero"`
	Links       []string  `json:"links,omitempty"`
	AliasOf     string    `json:"aliasOf,omitempty"`
	Groups      []string  `json:"groups,omitempty"`
}

func (g *Graph) profile(key string, e *entry) Profile {
	p := Profile{
		Key:         key,
		Kind:        KindAnonymous,
		LiFatID:     e.rec.LiFatID,
		LiFatIDAt:   msTime(e.rec.LiFatAt),
		EmailSHA256: e.rec.Email,
		EmailAt:     msTime(e.rec.EmailAt),
		Links:       e.rec.Links,
		AliasOf:     e.rec.AliasOf,
		Groups:      e.rec.Groups,
		Created:     msTime(e.rec.First),
		Updated:     e.at.UTC(),
		Expires:     e.at.Add(g.cfg.TTL).UTC(),
		Revision:    e.rev,
	}
	if isUser(key) {
		p.Kind = KindUser
	}
	for src, r := range e.rec.Scoped {
		if p.Unverified == nil {
			p.Unverified = map[string]Unverified{}
		}
		p.Unverified[src] = Unverified{
			LiFatID: r.LiFatID, LiFatIDAt: msTime(r.LiFatAt), EmailSHA256: r.Email, EmailAt: msTime(r.EmailAt),
			Links: r.Links, AliasOf: r.AliasOf, Groups: r.Groups,
		}
	}
	return p
}

// linked returns every key r's parts link to or name in aliasOf, once each,
// trusted part first.
func (r *record) linked() []string {
	var out []string
	for _, p := range r.parts() {
		for _, l := range append(slices.Clip(p.Links), p.AliasOf) {
			if l != "" && !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Show returns the profile of k with its linked profiles, or ErrNotFound.
func (g *Graph) Show(ctx context.Context, k Key) (Profile, error) {
	key, err := k.kvKey()
	if err != nil {
		return Profile{}, err
	}
	e, err := g.load(ctx, key)
	if err != nil {
		return Profile{}, err
	}
	if !e.exists {
		return Profile{}, ErrNotFound
	}
	p := g.profile(key, &e)
	for _, l := range e.rec.linked() {
		le, err := g.load(ctx, l)
		if err != nil {
			return Profile{}, err
		}
		if le.exists {
			p.Linked = append(p.Linked, g.profile(l, &le))
		}
	}
	return p, nil
}

// Delete removes everything the graph holds about the person k names, so
// that no key about them remains (not even a delete marker), and returns the
// keys removed. From a user it removes the user's profile, its anonymous
// ids, and the user ids aliased into it or that it was aliased to, with
// theirs, transitively. From an anonymous id it removes the anonymous id and
// its current user as above. Another user that shares a removed anonymous id
// (a shared browser) is kept, with the link to it removed. Links of every
// part of a profile count, unverified ones too (trust.go). It returns
// ErrNotFound when k has no profile.
func (g *Graph) Delete(ctx context.Context, k Key) ([]string, error) {
	key, err := k.kvKey()
	if err != nil {
		return nil, err
	}
	d := deletion{g: g, gone: map[string]bool{}}
	start, err := g.load(ctx, key)
	if err != nil {
		return nil, err
	}
	if !start.exists {
		return nil, ErrNotFound
	}
	if isUser(key) {
		err = d.user(ctx, key, &start)
	} else {
		err = d.anon(ctx, key, &start, true)
	}
	if err != nil {
		return nil, err
	}
	defer g.forgetKeys(d.order)
	for _, k := range d.order {
		if err := g.purge(ctx, k); err != nil {
			return d.removed, err
		}
		if d.existed[k] {
			d.removed = append(d.removed, k)
		}
	}
	if c, ok := g.store.(compacter); ok {
		// The data is unreadable already; this takes it off the disk.
		if err := c.compact(ctx, d.order); err != nil {
			g.lim.warn("compact", "compacting deleted identity profiles failed; compactions drop them later", err)
		}
	}
	// Unlink the removed anonymous ids from the users that stay.
	for _, u := range d.others {
		if d.gone[u] {
			continue
		}
		_, _, err := g.update(ctx, u, nil, func(r *record) bool {
			ch := false
			for _, p := range r.parts() {
				n := len(p.Links)
				p.Links = slices.DeleteFunc(p.Links, func(l string) bool { return d.gone[l] })
				ch = ch || len(p.Links) != n
			}
			return ch
		})
		if err != nil {
			return d.removed, fmt.Errorf("unlink a removed anonymous id: %w", err)
		}
	}
	return d.removed, nil
}

// deletion collects the keys to remove.
type deletion struct {
	g       *Graph
	gone    map[string]bool // keys to remove
	order   []string        // the same, in discovery order
	existed map[string]bool
	others  []string // users keeping a link to a removed anonymous id
	removed []string
}

func (d *deletion) mark(key string, e *entry) error {
	if len(d.order) >= maxDeleteKeys {
		return fmt.Errorf("delete identity: more than %d linked keys", maxDeleteKeys)
	}
	d.gone[key] = true
	d.order = append(d.order, key)
	if d.existed == nil {
		d.existed = map[string]bool{}
	}
	d.existed[key] = e.exists
	return nil
}

func (d *deletion) user(ctx context.Context, key string, e *entry) error {
	if d.gone[key] {
		return nil
	}
	if e == nil {
		le, err := d.g.load(ctx, key)
		if err != nil {
			return err
		}
		e = &le
	}
	if err := d.mark(key, e); err != nil {
		return err
	}
	for _, l := range e.rec.linked() {
		var err error
		switch {
		case isAnon(l):
			err = d.anon(ctx, l, nil, false)
		case isUser(l):
			err = d.user(ctx, l, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// anon marks an anonymous id; from the start of a deletion it also removes
// its current user, otherwise its other users are only unlinked.
func (d *deletion) anon(ctx context.Context, key string, e *entry, start bool) error {
	if d.gone[key] {
		return nil
	}
	if e == nil {
		le, err := d.g.load(ctx, key)
		if err != nil {
			return err
		}
		e = &le
	}
	if err := d.mark(key, e); err != nil {
		return err
	}
	// The current user of every part: a deletion that starts from a browser
	// takes the users it identified as, verified or not.
	var cur []string
	for _, p := range e.rec.parts() {
		if u := p.user(); u != "" {
			cur = append(cur, u)
		}
	}
	for _, u := range e.rec.linked() {
		if start && slices.Contains(cur, u) {
			if err := d.user(ctx, u, nil); err != nil {
				return err
			}
			continue
		}
		d.others = append(d.others, u)
	}
	return nil
}

// purge removes every message of key from the bucket's stream, leaving no
// delete marker with the key behind.
func (g *Graph) purge(ctx context.Context, key string) error {
	if err := g.store.purge(ctx, key); err != nil {
		return fmt.Errorf("purge identity key: %w", err)
	}
	return nil
}

// forgetKeys drops keys from this process's memo and tells the other
// processes sharing the bucket to do the same (best effort: a process that
// misses the notice holds a removed profile at most Config.MemoTTL).
func (g *Graph) forgetKeys(keys []string) {
	g.memo.drop(keys)
	if len(keys) == 0 || g.nc == nil {
		return
	}
	if err := g.nc.Publish(g.forget, []byte(strings.Join(keys, "\n"))); err != nil {
		g.lim.warn("forget", "telling other processes about a deletion failed; they forget it within the memo TTL", err)
	}
}
