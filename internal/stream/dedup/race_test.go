//go:build race

package dedup

// raceEnabled: the race detector's sync.Pool drops some of what is put
// back, so allocation counts of pooled code vary under it.
const raceEnabled = true
