package linkedin

import (
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// FormatConfig configures a Format. The zero value is LinkedIn's defaults.
type FormatConfig struct {
	// APIVersion is the LinkedIn-Version of every request; "" for
	// capi.DefaultAPIVersion.
	APIVersion string
	// BatchSize caps the elements of one BATCH_CREATE request (a mapping's
	// own batch_size can only lower it). 0 means 5000.
	BatchSize int
}

// Format is the LinkedIn Conversions API's Format: a mapping's output
// becomes a validated conversion (capi.Builder, with the identity graph's
// li_fat_id and email hash filling what the event lacks), and conversions
// become single or BATCH_CREATE requests (linkedin-capi.md §8, §9, §17.4).
// It is immutable and safe for concurrent use.
type Format struct {
	builder   *capi.Builder
	rc        capi.RequestConfig
	batchSize int
	enriched  enrichedMaps
}

// NewFormat returns the Format of cfg.
func NewFormat(cfg FormatConfig) (*Format, error) {
	if cfg.APIVersion != "" {
		if err := capi.ValidateAPIVersion(cfg.APIVersion); err != nil {
			return nil, err
		}
	}
	b, err := capi.NewBuilder(capi.BuilderConfig{})
	if err != nil {
		return nil, err
	}
	// Requests carry a placeholder token: the client replaces it with the
	// current one on every call, and a printed request (preview, the
	// console) shows "Authorization: Bearer REDACTED" as it is sent.
	rc := capi.RequestConfig{APIVersion: cfg.APIVersion, AccessToken: capi.RedactedValue}
	return &Format{builder: b, rc: rc, batchSize: capi.ClampBatchSize(cfg.BatchSize)}, nil
}

// conversion is a Format's payload value: the conversion and how its
// mapping wants it sent. Dead letters keep the conversion's JSON.
type conversion struct {
	capi.Conversion
	batching capi.Batching
}

// MarshalJSON encodes the conversion as sent.
func (c *conversion) MarshalJSON() ([]byte, error) { return json.Marshal(&c.Conversion) }

// DefaultFields returns Segment's default field map of the "Stream
// Conversion Event" action.
func (f *Format) DefaultFields() []byte { return capi.DefaultMapping() }

// Build validates a mapping's output into a conversion for the route's rule.
// The person's li_fat_id and email hash fill linkedInUUID and email when the
// mapped event has none (and the mapping did not remove them); Enriched
// names where each came from, also when the result is invalid. IDs say
// whether the conversion carries the li_fat_id and the email hash (match
// coverage).
func (f *Format) Build(r *delivery.Route, fields event.Value, ids identity.Captured, now time.Time) (delivery.Payload, error) {
	var p delivery.Payload
	af := actionFields(fields)
	var from enrichedFrom // where the fields enrichment filled come from
	if ids.LiFatID != "" && af.LinkedInUUID.Blank() && !r.Removed(capi.FieldLinkedInUUID) {
		af.LinkedInUUID = capi.MappedString(ids.LiFatID)
		from.lfi, from.hasLfi = ids.LiFatIDFrom, true
	}
	if ids.Email != "" && af.Email.Blank() && !r.Removed(capi.FieldEmail) {
		af.Email = capi.MappedString(ids.Email)
		from.email, from.hasEmail = ids.EmailFrom, true
	}
	if from.hasLfi || from.hasEmail {
		p.Enriched = f.enriched.get(from)
	}
	batching, err := capi.BatchingOf(&af)
	if err != nil {
		return p, err
	}
	batching.Size = min(batching.Size, f.batchSize)
	c, err := f.builder.BuildFields(&af, r.Rule, now)
	if err != nil {
		return p, err
	}
	p.Value = &conversion{Conversion: c, batching: batching}
	for _, id := range c.User.UserIDs {
		switch id.IDType {
		case capi.IDLinkedInUUID:
			p.IDs |= delivery.IDLiFatID
		case capi.IDSHA256Email:
			p.IDs |= delivery.IDEmail
		}
	}
	p.Happened = time.UnixMilli(c.ConversionHappenedAt)
	return p, nil
}

// Requests encodes payloads into LinkedIn requests: those of one rule whose
// mapping batches go into BATCH_CREATE requests of at most the mapping's
// batch size (§17.4), the others — and a rule's lone payload — into single
// creates. Requests come in the order of their first payload; each
// request's Value is a capi.Request.
func (f *Format) Requests(ps []delivery.Payload) ([]delivery.Request, error) {
	type key struct {
		rule string
		size int
	}
	convs := make([]*conversion, len(ps))
	for i, p := range ps {
		c, ok := p.Value.(*conversion)
		if !ok {
			return nil, fmt.Errorf("linkedin requests: payload %d is a %T, not a LinkedIn conversion", i, p.Value)
		}
		convs[i] = c
	}
	var reqs []delivery.Request
	single := func(i int) error {
		req, err := capi.NewSingleRequest(f.rc, &convs[i].Conversion)
		if err != nil {
			return err
		}
		reqs = append(reqs, delivery.Request{Items: []int{i}, Value: req})
		return nil
	}
	groups := map[key][]int{}
	var order []key
	for i, c := range convs {
		if !c.batching.Enabled {
			order = append(order, key{size: -1 - i}) // its own group
			continue
		}
		k := key{c.Conversion.Conversion, capi.ClampBatchSize(c.batching.Size)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		pos := groups[k]
		if k.size < 0 || len(pos) == 1 {
			i := -1 - k.size
			if k.size >= 0 {
				i = pos[0]
			}
			if err := single(i); err != nil {
				return nil, err
			}
			continue
		}
		cs := make([]capi.Conversion, len(pos))
		for j, p := range pos {
			cs[j] = convs[p].Conversion
		}
		batch, err := capi.NewBatchRequests(f.rc, cs, k.size)
		if err != nil {
			return nil, err
		}
		for _, req := range batch {
			items := make([]int, len(req.Indices))
			for j, idx := range req.Indices {
				items[j] = pos[idx]
			}
			reqs = append(reqs, delivery.Request{Items: items, Value: req})
		}
	}
	return reqs, nil
}

// enrichedFrom is what a payload's Enriched says: where its linkedInUUID
// and its email came from, for the fields enrichment filled.
type enrichedFrom struct {
	lfi, email       string
	hasLfi, hasEmail bool
}

// enrichedMaps hands out one Payload.Enriched map per enrichedFrom, shared
// by every payload that says the same: a map of its own per conversion
// (most returning visitors' conversions are enriched) cost an allocation
// and a hash insert each, for a handful of distinct contents (the
// …From names are capture's field names, the cookie's and the graph's).
// The maps are never written once handed out; Payload.Enriched is read
// only. Lock-free reads of a copy-on-write map; at most enrichedMax
// entries, beyond which a payload gets a map of its own.
type enrichedMaps struct {
	m  atomic.Pointer[map[enrichedFrom]map[string]string]
	mu sync.Mutex // serialises additions
}

// enrichedMax bounds the distinct Enriched maps a Format keeps.
const enrichedMax = 64

func (e *enrichedMaps) get(k enrichedFrom) map[string]string {
	if m := e.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	v := map[string]string{}
	if k.hasLfi {
		v[capi.FieldLinkedInUUID] = k.lfi
	}
	if k.hasEmail {
		v[capi.FieldEmail] = k.email
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.m.Load()
	if old != nil {
		if w, ok := (*old)[k]; ok {
			return w
		}
		if len(*old) >= enrichedMax {
			return v
		}
	}
	next := make(map[enrichedFrom]map[string]string, 1+len(ptrMap(old)))
	maps.Copy(next, ptrMap(old))
	next[k] = v
	e.m.Store(&next)
	return v
}

// ptrMap returns *m, nil for a nil m.
func ptrMap(m *map[enrichedFrom]map[string]string) map[enrichedFrom]map[string]string {
	if m == nil {
		return nil
	}
	return *m
}
