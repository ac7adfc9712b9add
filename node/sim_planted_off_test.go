//go:build !kvmesh_planted

package node_test

import "github.com/kvmesh/kvmesh/node"

// plantEarlyAck needs a kvmesh_planted build: the product has no planted
// bug to turn on.
func plantEarlyAck(*node.Config) { panic("the planted early-ack bug needs -tags kvmesh_planted") }
