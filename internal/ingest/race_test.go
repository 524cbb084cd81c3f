//go:build race

package ingest

// raceEnabled: the race detector's sync.Pool drops some of what is put
// back, so whether pooled memory is reused varies under it.
const raceEnabled = true
