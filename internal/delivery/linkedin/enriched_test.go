package linkedin

import (
	"fmt"
	"maps"
	"reflect"
	"testing"

	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// TestEnrichedMaps: a payload's Enriched says where each filled field came
// from; payloads that say the same share one map, up to enrichedMax
// distinct ones, after which each gets its own (still right).
func TestEnrichedMaps(t *testing.T) {
	var e enrichedMaps
	for _, tt := range []struct {
		k    enrichedFrom
		want map[string]string
	}{
		{enrichedFrom{lfi: "context.page.url", hasLfi: true}, map[string]string{capi.FieldLinkedInUUID: "context.page.url"}},
		{enrichedFrom{email: "graph", hasEmail: true}, map[string]string{capi.FieldEmail: "graph"}},
		{enrichedFrom{lfi: "cookie capstan_lfi", hasLfi: true, email: "traits.email", hasEmail: true},
			map[string]string{capi.FieldLinkedInUUID: "cookie capstan_lfi", capi.FieldEmail: "traits.email"}},
		{enrichedFrom{lfi: "", hasLfi: true}, map[string]string{capi.FieldLinkedInUUID: ""}},
	} {
		a, b := e.get(tt.k), e.get(tt.k)
		if !maps.Equal(a, tt.want) || !maps.Equal(b, tt.want) {
			t.Errorf("%+v: got %v and %v, want %v", tt.k, a, b, tt.want)
		}
		if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
			t.Errorf("%+v: two maps for one content", tt.k)
		}
	}
	for i := range 2 * enrichedMax {
		from := fmt.Sprint("source ", i)
		if got := e.get(enrichedFrom{lfi: from, hasLfi: true}); len(got) != 1 || got[capi.FieldLinkedInUUID] != from {
			t.Fatalf("%s: got %v", from, got)
		}
	}
	if n := len(*e.m.Load()); n != enrichedMax {
		t.Errorf("%d maps kept, want at most %d", n, enrichedMax)
	}
}
