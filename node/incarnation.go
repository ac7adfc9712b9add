package node

import (
	"encoding/binary"
	"fmt"

	"github.com/kvmesh/kvmesh/node/store"
)

// Store metadata entries of the incarnation protocol.
const (
	metaIncarnation = "incarnation" // uint64, big-endian
	metaClean       = "clean"       // 1: the last run closed cleanly
)

// startIncarnation decides the incarnation this run issues dots under and
// marks the store as running. A node that crashed may have sent writes to
// other replicas that it never committed itself; issuing new dots under
// the same actor could then reuse one of them and make a replica drop an
// acknowledged write. So after an unclean stop the node takes a new
// incarnation, a new actor in every clock (Riak's KV679 fix). A clean
// Close commits every issued write first and keeps the incarnation, so
// clocks grow by one entry per crash, not per restart.
func startIncarnation(st *store.Store) (uint64, error) {
	raw, err := st.GetMeta(metaIncarnation)
	if err != nil {
		return 0, err
	}
	clean, err := st.GetMeta(metaClean)
	if err != nil {
		return 0, err
	}
	var inc uint64
	switch {
	case raw == nil: // a new store
	case len(raw) != 8:
		return 0, fmt.Errorf("store metadata %q is corrupt", metaIncarnation)
	default:
		inc = binary.BigEndian.Uint64(raw)
		if len(clean) != 1 || clean[0] != 1 {
			inc++
		}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], inc)
	if err := st.PutMeta(metaIncarnation, b[:]); err != nil {
		return 0, err
	}
	if err := st.PutMeta(metaClean, []byte{0}); err != nil {
		return 0, err
	}
	return inc, nil
}
