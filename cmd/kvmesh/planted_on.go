//go:build kvmesh_planted

package main

import (
	"flag"

	"github.com/kvmesh/kvmesh/node"
)

// plantedFlags registers the planted bug of a kvmesh_planted build (the
// fault suite's test binary only).
func plantedFlags(fs *flag.FlagSet, cfg *node.Config) {
	fs.DurationVar(&cfg.UnsafeEarlyAck, "unsafe-early-ack", 0, "TESTING ONLY: acknowledge writes this long before they are durable (the fault suite's planted bug)")
}
