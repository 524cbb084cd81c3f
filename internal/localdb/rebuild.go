package localdb

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// filterRebuildChunk is how many keys a rebuild reads through one
// iterator: it then closes it (so that it pins no memtable or table for
// long) and pauses (DB.rebuildShare).
const filterRebuildChunk = 4096

// filterRebuildShare is the default share of one core a rebuild's scan
// takes at most (a fourth): it pauses three times as long as each chunk
// took.
const filterRebuildShare = 4

// cueRebuild asks the rebuilder to consider a rebuild (rebuildDue); it
// never waits.
func (d *DB) cueRebuild() {
	if d.rebuildCue == nil {
		return
	}
	select {
	case d.rebuildCue <- struct{}{}:
	default:
	}
}

// rebuilder rebuilds f each time it is cued (its last generation filled,
// or a sweep ended) and a rebuild is due, until Close.
func (d *DB) rebuilder(f *Filter) {
	for {
		select {
		case <-d.stop:
			return
		case <-d.rebuildCue:
		}
		if d.noRebuild || !f.Ready() || !d.rebuildDue(f) {
			continue
		}
		start := time.Now()
		n, err := d.rebuild(f)
		switch {
		case err != nil:
			d.log.Error("rebuilding the "+d.what+"'s filter of absent keys failed: it keeps its old keys", "error", err)
		case n >= 0:
			d.rebuilds.Add(1)
			d.log.Info("rebuilt the "+d.what+"'s filter of absent keys from its keys", "keys", n,
				"took", time.Since(start).Round(time.Millisecond), "bytes", f.Bytes())
		}
	}
}

// rebuildDue reports whether f is full (its generations take its budget,
// the last one as full as it is sized for) while the sweeps removed at
// least half of the keys it holds since it was built: rebuilt, it would
// hold at most half as many, each generation less full.
func (d *DB) rebuildDue(f *Filter) bool {
	gs := f.cur.Load()
	return gs.isFull() && d.swept.Load()-gs.swept >= gs.keys()/2
}

// rebuild fills new generations with the keys of d and puts them in
// place of f's, and returns how many keys it read (-1: Close stopped it).
//
// Why no key the store holds is missing from them: the new generations
// are set as next first, so every Add from then on writes them too. Then
// the rebuild waits for the writes that had begun their Adds (BeginAdds)
// to commit (EndAdds, waitAdds): a key Added before next was set is
// committed when the reading begins, and every
// view read from then on holds it unless it was deleted since. So each
// key the store holds at the swap was either committed before the
// reading began and is still there when the scan passes it (read), or
// was written since (Added to next). That is why the scan needs no single
// snapshot: it reads the store in chunks, each through a new iterator.
// Keys deleted meanwhile may stay in the new generations: they only cost
// a look-up.
func (d *DB) rebuild(f *Filter) (int, error) {
	cur := f.cur.Load()
	// The keys the store holds, at most: those the filter holds less the
	// ones swept since. The new generations start at room for twice as
	// many, between a quarter and half of the budget (they grow as
	// usual), so that the filter's memory stays within 1.5 budgets while
	// both exist, unless the keys make them grow: up to 2 budgets.
	live := cur.keys() - min(cur.keys(), d.swept.Load()-cur.swept)
	next := &filterGens{budget: cur.budget, swept: d.swept.Load()}
	next.gens.Store(&[]*filterGen{newFilterGen(min(max(filterBlocks(2*live), cur.budget/4), cur.budget/2))})
	f.next.Store(next)
	if !f.waitAdds(d.stop) {
		f.next.Store(nil)
		return -1, nil
	}
	n, err := d.scanInto(f, next)
	if err != nil || n < 0 {
		f.next.Store(nil)
		return n, err
	}
	f.cur.Store(next) // before next is cleared: an Add reads next first, then cur
	f.next.Store(nil)
	return n, nil
}

// scanInto adds the keys of d into gs in chunks (filterRebuildChunk), each
// read through an iterator of its own, pausing after each so as to take
// at most 1/d.rebuildShare of a core. It returns the keys read, -1 when
// Close stopped it.
func (d *DB) scanInto(f *Filter, gs *filterGens) (int, error) {
	var from []byte
	n := 0
	for {
		start := time.Now()
		it, err := d.NewIter(&pebble.IterOptions{KeyTypes: pebble.IterKeyTypePointsOnly})
		if err != nil {
			return n, err
		}
		read := 0
		ok := it.First()
		if from != nil {
			ok = it.SeekGE(from)
		}
		for ; ok && read < filterRebuildChunk; ok = it.Next() {
			h0, h1 := f.hash(it.Key())
			gs.add(h0, h1)
			read++
		}
		if ok {
			from = append(from[:0], it.Key()...) // the next chunk's first key
		}
		if err := it.Close(); err != nil {
			return n, err
		}
		n += read
		if !ok {
			return n, nil
		}
		if d.stopping() {
			return -1, nil
		}
		if pause := time.Since(start) * time.Duration(d.rebuildShare-1); pause > 0 {
			select {
			case <-d.stop:
				return -1, nil
			case <-time.After(pause):
			}
		}
	}
}
