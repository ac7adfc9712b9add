package node

import (
	"time"

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/store"
)

// QuarantineStore moves the store in a stopped node's data dir (its bbolt
// file and log segments) into a new directory "quarantine-<UTC time>"
// inside dataDir, and returns that directory. Nothing is deleted. The
// node's next start finds no store: it creates an empty one and writes
// under a new actor, and its peers refill it. It refuses while a node has
// the store open.
//
// It is what an operator runs when a node refuses to start on a damaged
// store (store.ErrCorrupt).
func QuarantineStore(dataDir string) (string, error) {
	c := Config{DataDir: dataDir}
	return store.Quarantine(disk.OS{}, c.dbPath(), time.Now())
}

// CompactStore rewrites the store of the stopped node whose data dir is
// dataDir into a file of its live pages only (store.Compact): the file
// shrinks by what tombstone compaction and dropped partitions freed.
// progress gets the bytes written and the old size as it goes.
func CompactStore(dataDir string, progress func(written, total int64)) (before, after int64, err error) {
	c := Config{DataDir: dataDir}
	return store.Compact(c.dbPath(), store.Options{}, progress)
}
