package stats

import "encoding/json"

// Record is what one key of the statistics buckets holds: a destination's
// counts in one minute (stats_minutes) or hour (stats_hours).
type Record struct {
	// Received counts the stored events the destination read.
	Received int64 `json:"received,omitempty"`
	// Outcomes count the events that became no conversion, by outcome
	// (not_matched, filtered_source, filtered_integrations,
	// filtered_consent, suppressed, skipped_unusable).
	Outcomes map[string]int64 `json:"outcomes,omitempty"`
	// DeadLettered counts dead letters of no mapping (a stored event that
	// does not parse).
	DeadLettered int64 `json:"deadLettered,omitempty"`
	// Mappings are the counts of each mapping, by name.
	Mappings map[string]*MappingRecord `json:"mappings,omitempty"`
}

// MappingRecord is one mapping's counts in a Record.
type MappingRecord struct {
	// Matched counts conversions (the trigger matched an event); Valid
	// those whose payload was built; Delivered those the destination
	// accepted; DeadLettered those written to the DLQ.
	Matched      int64 `json:"matched,omitempty"`
	Valid        int64 `json:"valid,omitempty"`
	Delivered    int64 `json:"delivered,omitempty"`
	DeadLettered int64 `json:"deadLettered,omitempty"`
	// IDs count delivered conversions by the identifiers they carried:
	// li_fat_id only, email only, both, neither
	// (delivery.CoverageClasses).
	IDs [4]int64 `json:"ids"`
	// Latency counts delivered conversions per latency bucket (see the
	// package doc), trailing empty buckets left out.
	Latency []int64 `json:"latency,omitempty"`
}

func (m *MappingRecord) empty() bool {
	return m.Matched == 0 && m.Valid == 0 && m.Delivered == 0 && m.DeadLettered == 0 && m.IDs == [4]int64{} && len(m.Latency) == 0
}

func (r *Record) empty() bool {
	return r.Received == 0 && len(r.Outcomes) == 0 && r.DeadLettered == 0 && len(r.Mappings) == 0
}

// add adds o's counts to r.
func (r *Record) add(o *Record) {
	if o == nil {
		return
	}
	r.Received += o.Received
	r.DeadLettered += o.DeadLettered
	for k, v := range o.Outcomes {
		if r.Outcomes == nil {
			r.Outcomes = map[string]int64{}
		}
		r.Outcomes[k] += v
	}
	for name, om := range o.Mappings {
		if r.Mappings == nil {
			r.Mappings = map[string]*MappingRecord{}
		}
		m := r.Mappings[name]
		if m == nil {
			m = &MappingRecord{}
			r.Mappings[name] = m
		}
		m.add(om)
	}
}

func (m *MappingRecord) add(o *MappingRecord) {
	m.Matched += o.Matched
	m.Valid += o.Valid
	m.Delivered += o.Delivered
	m.DeadLettered += o.DeadLettered
	for i := range m.IDs {
		m.IDs[i] += o.IDs[i]
	}
	if len(o.Latency) > len(m.Latency) {
		m.Latency = append(m.Latency, make([]int64, len(o.Latency)-len(m.Latency))...)
	}
	for i, v := range o.Latency {
		m.Latency[i] += v
	}
}

// jsonUnmarshal decodes a stored Record.
func jsonUnmarshal(b []byte, r *Record) error { return json.Unmarshal(b, r) }
