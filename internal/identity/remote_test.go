package identity

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/capstan-gw/capstan/internal/stream"
)

// TestAttachedToolUsesTheRunningStore: a tool attached to a running
// capstan's embedded engine (capstan identity show|delete) cannot open the
// local store, which that capstan holds; through Remote it shows and
// deletes profiles in it, and the running graph forgets them at once.
func TestAttachedToolUsesTheRunningStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	eng, err := stream.Open(ctx, stream.Config{DataDir: dir, Listen: "127.0.0.1:0"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	l, err := OpenLocal(LocalConfig{Dir: dir + "/identity"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	sub, err := Serve(eng.Conn(), l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	g := openGraph(t, eng.JetStream(), Config{Store: l})
	observe(t, g, pageA)
	observe(t, g, identAU)
	if got := enrich(t, g, trackU); got.LiFatID != "123456" { // now in the memo
		t.Fatalf("enrich %+v", got)
	}

	cli, err := stream.Attach(ctx, stream.Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Close)
	if !cli.Attached() {
		t.Fatal("the tool did not attach to the running engine")
	}
	if _, err := OpenLocal(LocalConfig{Dir: dir + "/identity"}); !errors.Is(err, ErrLocalInUse) {
		t.Fatalf("the tool opened the running store: %v", err)
	}
	tg := openGraph(t, cli.JetStream(), Config{Store: Remote(cli.Conn())})
	p, err := tg.Show(ctx, Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	if p.LiFatID != "123456" || p.EmailSHA256 != emailHash || len(p.Linked) != 1 || p.Revision == 0 {
		t.Errorf("Show through the running capstan: %+v", p)
	}
	removed, err := tg.Delete(ctx, Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{AnonymousKey(anonA), UserKey(userU)}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if got := keys(t, g); len(got) != 0 {
		t.Errorf("keys left in the running store: %v", got)
	}
	eventually(t, 5e9, func() bool { return enrich(t, g, trackU) == (Captured{}) })
	if _, err := tg.Show(ctx, Key{UserID: userU}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Show after the delete: %v", err)
	}
	// The tool's writes are compare-and-set in the running store too.
	observe(t, tg, identAU)
	if p, err := g.Show(ctx, Key{UserID: userU}); err != nil || p.EmailSHA256 != emailHash {
		t.Errorf("the running graph does not see the tool's write: %+v, %v", p, err)
	}
}

// TestMigrateBucket: with the local store, a data directory whose graph is
// in the KV bucket gets its profiles copied once, then loses the bucket.
func TestMigrateBucket(t *testing.T) {
	ctx := context.Background()
	js := openJS(t)
	old := openGraph(t, js, Config{})
	observe(t, old, pageA)
	observe(t, old, identAU)
	before := keys(t, old)
	if len(before) != 2 {
		t.Fatalf("bucket keys %v", before)
	}
	oldShow, err := old.Show(ctx, Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	l := openLocal(t)
	n, err := MigrateBucket(ctx, js, "", l, discard)
	if err != nil || n != 2 {
		t.Fatalf("migrated %d (%v), want 2", n, err)
	}
	if _, err := js.KeyValue(ctx, stream.IdentityKV); err == nil {
		t.Error("the bucket is still there")
	}
	if n, err := MigrateBucket(ctx, js, "", l, discard); err != nil || n != 0 {
		t.Errorf("second migration: %d, %v", n, err)
	}
	g := openGraph(t, js, Config{Store: l})
	if got := keys(t, g); !slices.Equal(got, before) {
		t.Errorf("local keys %v, want %v", got, before)
	}
	p, err := g.Show(ctx, Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	if p.LiFatID != oldShow.LiFatID || p.EmailSHA256 != oldShow.EmailSHA256 || !p.Updated.Equal(oldShow.Updated.Truncate(1e6)) || len(p.Linked) != 1 {
		t.Errorf("migrated profile %+v\nwas %+v", p, oldShow)
	}
	if got := enrich(t, g, trackU); got.LiFatID != "123456" || got.Email != emailHash {
		t.Errorf("enrich after migration: %+v", got)
	}
}
