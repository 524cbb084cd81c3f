package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const externalNATS = "nats://127.0.0.1:4222"

// externalJS connects to the NATS server at 127.0.0.1:4222, or skips the
// test when none with JetStream answers there.
func externalJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	const skip = "no NATS server with JetStream at 127.0.0.1:4222: external identity test skipped"
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		t.Skip(skip)
	}
	c.Close()
	nc, err := nats.Connect(externalNATS, nats.Timeout(3*time.Second), nats.NoReconnect(), nats.Name("capstan-identity-test"))
	if err != nil {
		t.Skipf("%s (%v)", skip, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Skipf("%s (%v)", skip, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Skipf("%s (%v)", skip, err)
	}
	return js
}

// TestExternal runs the story on an external server, in a bucket of its
// own (the server is shared), which it deletes afterwards.
func TestExternal(t *testing.T) {
	js := externalJS(t)
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	bucket := "identity_test_" + hex.EncodeToString(nonce[:])
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), bucket) })
	g := openGraph(t, js, Config{Bucket: bucket, TTL: time.Hour})
	if st, err := g.store.(*jsStore).kv.Status(context.Background()); err != nil || st.TTL() != time.Hour {
		t.Fatalf("bucket status %v %v", st, err)
	}
	observe(t, g, pageA)
	observe(t, g, identAU)
	want := Captured{LiFatID: "123456", LiFatIDFrom: FromUser, Email: emailHash, EmailFrom: FromUser}
	if got := enrich(t, g, trackU); got != want {
		t.Errorf("Enrich = %+v\nwant %+v", got, want)
	}
	// A second process on the same bucket binds it unchanged and sees the same.
	g2 := openGraph(t, js, Config{Bucket: bucket, TTL: time.Hour})
	if got := enrich(t, g2, trackU); got != want {
		t.Errorf("second graph: Enrich = %+v", got)
	}
	removed, err := g2.Delete(context.Background(), Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if w := []string{AnonymousKey(anonA), UserKey(userU)}; !slices.Equal(removed, w) {
		t.Errorf("removed %v, want %v", removed, w)
	}
	if ks := keys(t, g); len(ks) != 0 {
		t.Errorf("keys left: %v", ks)
	}
}
