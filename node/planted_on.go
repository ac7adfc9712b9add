//go:build kvmesh_planted

package node

import (
	"time"

	"github.com/kvmesh/kvmesh/node/store"
)

// plantedConfig holds the test-only settings of a kvmesh_planted build.
type plantedConfig struct {
	// UnsafeEarlyAck, when > 0, acknowledges writes before they are
	// durable and logs them this much later. It breaks durability on
	// purpose, so the fault suite can prove it detects lost acknowledged
	// writes. Only kvmesh_planted builds have it. Default 0: off.
	UnsafeEarlyAck time.Duration
}

func (n *Node) plantStoreOptions(o *store.Options) {
	if n.cfg.UnsafeEarlyAck > 0 {
		o.UnsafeEarlyAck = n.cfg.UnsafeEarlyAck
		n.log.Warn("UNSAFE: acknowledging writes before they are durable (fault-suite planted bug)")
	}
}
