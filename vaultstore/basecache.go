package vaultstore

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// A replica keeps the inventory bases (inventory_records.go) it has read
// or written (a fold, a rebuild: it knows what the version it wrote holds),
// so that a page of the inventory reads one record for each service whose
// base has not changed since: the delta. A delta names the base it
// complements (inventoryDelta.Base, .Incarnation, .Life: every entry ever
// taken out of the delta is in that version of the base and in every later
// one), and a base kept here serves a reader whose delta names exactly it:
// the same incarnation, life and version. KV versions never change once
// written; a base's incarnation tells one service apart from an earlier
// one of the same id, and its life one base record from an earlier one of
// the same service (removed behind credgate's back and built again), whose
// versions started again at 1; so what is served is what the reader would
// have read then or a little before, never a mix of two. Only a caller who
// has just read the delta with its own token is served from here: the
// delta and the base sit in the same folder of the inventory, under the
// same policy. Bases describe credentials and hold no values.

// DefaultInventoryCacheBytes bounds what a replica keeps of the bases it
// has read (their entries' sizes in their records).
const DefaultInventoryCacheBytes = 32 << 20

type keptBase struct {
	version int
	base    *inventoryBase // read-only
	size    int
}

type baseCache struct {
	bases  *lru.Cache[string, keptBase] // by the base's path
	mu     sync.Mutex                   // puts: every eviction happens in one
	used   int64                        // the sizes of the bases kept (mu)
	budget int64
}

// newBaseCache keeps up to budget bytes of bases (none when budget <= 0).
func newBaseCache(budget int) (*baseCache, error) {
	c := &baseCache{budget: int64(budget)}
	var err error
	c.bases, err = lru.NewWithEvict(1<<16, func(_ string, b keptBase) { c.used -= int64(b.size) })
	return c, err
}

// get returns the base kept for path when it is of incarnation, life and
// version. Its entries must not be changed.
func (c *baseCache) get(path, incarnation, life string, version int) (*inventoryBase, bool) {
	if c.budget <= 0 || version <= 0 || incarnation == "" {
		return nil, false
	}
	b, ok := c.bases.Get(path)
	if !ok || b.base.Incarnation != incarnation || b.base.Life != life || b.version != version {
		return nil, false
	}
	return b.base, true
}

// put keeps base, read at version from path, when it is built, in place
// of the one kept; base must not be changed after.
func (c *baseCache) put(path string, version int, base *inventoryBase) {
	if c.budget <= 0 || !base.built() || base.Incarnation == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, kept := c.bases.Peek(path)
	if kept && old.base.Incarnation == base.Incarnation && old.base.Life == base.Life && old.version == version {
		return
	}
	size := 0
	for _, e := range base.Entries {
		size += e.size()
	}
	if int64(size) > c.budget/4 {
		return
	}
	if kept {
		c.bases.Remove(path) // Add would replace it without telling used
	}
	c.used += int64(size)
	c.bases.Add(path, keptBase{version: version, base: base, size: size})
	for c.used > c.budget {
		if _, _, ok := c.bases.RemoveOldest(); !ok {
			break
		}
	}
}
