// Package migrate translates other tools' configuration into capstan's.
//
// [Segment] reads a Segment destination export — the destinations with
// their settings and subscriptions (each action's FQL trigger and its
// mapping; segment-ingest.md §6), and optionally the sources — and writes
// capstan's YAML configuration: one LinkedIn destination per LinkedIn
// Conversions API destination, one mapping per "Stream Conversion Event"
// subscription with its trigger and its mapping unchanged, and the
// conversion rule ids the mappings' onMappingSave hook saved, so that
// capstan creates no rule again. Fields that Segment's mapping leaves out
// are written as null, because a Segment mapping is complete as given and
// capstan's YAML would otherwise fill in the defaults.
//
// Secrets (OAuth tokens) are never copied: the YAML reads them from
// environment variables, and the Result names them. What cannot be
// translated (another destination type, another action, a directive or a
// trigger capstan does not support) is left out of the YAML and reported
// with its JSON path. The package checks its own output: every file it
// returns loads with internal/config, placeholders set, with every trigger
// and field map as in the export.
//
// migrate does no I/O: callers pass the export's bytes and write the YAML.
package migrate
