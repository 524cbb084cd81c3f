package delivery

import "time"

// IDs are the identifiers a conversion carries that the remote matches
// people on, for match coverage: a set of IDLiFatID and IDEmail. The
// Format sets them in Payload.IDs.
type IDs uint8

// The identifiers of IDs.
const (
	// IDLiFatID: the LinkedIn click id (li_fat_id, LinkedIn's
	// LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID).
	IDLiFatID IDs = 1 << iota
	// IDEmail: the SHA-256 of the normalised email.
	IDEmail
)

// Match-coverage classes: the names of the four sets of IDs, as metric
// labels and in the console's statistics.
const (
	CoverageLiFatID = "li_fat_id" // only the click id
	CoverageEmail   = "email"     // only the email hash
	CoverageBoth    = "both"
	CoverageNeither = "neither"
)

// Class returns the match-coverage class of ids: li_fat_id, email, both or
// neither.
func (ids IDs) Class() string {
	switch ids & (IDLiFatID | IDEmail) {
	case IDLiFatID:
		return CoverageLiFatID
	case IDEmail:
		return CoverageEmail
	case IDLiFatID | IDEmail:
		return CoverageBoth
	}
	return CoverageNeither
}

// Index returns the position of ids' class in CoverageClasses.
func (ids IDs) Index() int {
	switch ids & (IDLiFatID | IDEmail) {
	case IDLiFatID:
		return 0
	case IDEmail:
		return 1
	case IDLiFatID | IDEmail:
		return 2
	}
	return 3
}

// CoverageClasses are the match-coverage classes in the order of IDs.Index.
var CoverageClasses = [4]string{CoverageLiFatID, CoverageEmail, CoverageBoth, CoverageNeither}

// Funnel is told where each event and conversion of the destinations gets
// to, for durable delivery statistics (the console's overview): a stored
// event is received; for each mapping whose trigger matches it a
// conversion is matched, and valid when its payload builds; a valid
// conversion ends delivered (accepted by the destination) or dead-lettered.
// Runners count at each stage, through counters resolved once per
// destination and mapping so that an event costs a few atomic additions.
// internal/stats implements it; nil in Deps counts nothing. Implementations
// must be safe for concurrent use.
type Funnel interface {
	// Destination returns the counters of the destination named name.
	Destination(name string) DestinationFunnel
}

// DestinationFunnel counts one destination's events.
type DestinationFunnel interface {
	// Received counts a stored event read by the destination (a replay
	// for it included).
	Received()
	// Outcome counts an event that became no conversion, and why (one of
	// NotMatched, the Filtered outcomes, Suppressed, SkippedUnusable).
	Outcome(o Outcome)
	// DeadLettered counts a dead letter of no mapping (ReasonUnusable: the
	// stored event does not parse).
	DeadLettered()
	// Mapping returns the counters of the destination's mapping named name.
	Mapping(name string) MappingFunnel
}

// MappingFunnel counts one mapping's conversions.
type MappingFunnel interface {
	// Matched counts a conversion: the mapping's trigger matched an event;
	// valid says whether its payload was built (else it is dead-lettered
	// as invalid, and DeadLettered is called too).
	Matched(valid bool)
	// Delivered counts a conversion the destination accepted, with the
	// identifiers it carried and the time from the event being stored to
	// its acceptance.
	Delivered(ids IDs, latency time.Duration)
	// DeadLettered counts a conversion written to the DLQ (invalid,
	// refused or expired).
	DeadLettered()
}

// funnelCounters are a runner's resolved counters.
type funnelCounters struct {
	dest     DestinationFunnel
	byName   map[string]MappingFunnel
	byRoute  map[*Route]MappingFunnel
	delivery map[*Route]*[4]conversionCounter // the capstan_delivery_conversions_total children
}

// conversionCounter is one child of capstan_delivery_conversions_total.
type conversionCounter interface{ Inc() }

// nopFunnel counts nothing (Deps.Funnel nil).
type nopFunnel struct{}

func (nopFunnel) Received()                            {}
func (nopFunnel) Outcome(Outcome)                      {}
func (nopFunnel) DeadLettered()                        {}
func (nopFunnel) Mapping(string) MappingFunnel         { return nopFunnel{} }
func (nopFunnel) Matched(bool)                         {}
func (nopFunnel) Delivered(IDs, time.Duration)         {}
func (nopFunnel) Destination(string) DestinationFunnel { return nopFunnel{} }

// newFunnelCounters resolves the counters of plan's destination and routes.
func newFunnelCounters(plan *Plan, f Funnel, m *Metrics) *funnelCounters {
	if f == nil {
		f = nopFunnel{}
	}
	fc := &funnelCounters{
		dest:     f.Destination(plan.Name),
		byName:   map[string]MappingFunnel{},
		byRoute:  map[*Route]MappingFunnel{},
		delivery: map[*Route]*[4]conversionCounter{},
	}
	for _, r := range plan.Routes {
		mf := fc.dest.Mapping(r.Name)
		fc.byName[r.Name], fc.byRoute[r] = mf, mf
		var cs [4]conversionCounter
		for i, class := range CoverageClasses {
			cs[i] = m.conversions.WithLabelValues(plan.Name, r.Name, class)
		}
		fc.delivery[r] = &cs
	}
	return fc
}

// route returns the counters of r (resolved now when r is not one of the
// plan's routes, which does not happen in delivery).
func (fc *funnelCounters) route(r *Route) MappingFunnel {
	if mf, ok := fc.byRoute[r]; ok {
		return mf
	}
	return fc.mapping(r.Name)
}

// mapping returns the counters of the mapping named name.
func (fc *funnelCounters) mapping(name string) MappingFunnel {
	if mf, ok := fc.byName[name]; ok {
		return mf
	}
	return fc.dest.Mapping(name)
}
