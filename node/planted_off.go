//go:build !kvmesh_planted

package node

import "github.com/kvmesh/kvmesh/node/store"

// plantedConfig holds nothing in a product build: the planted durability
// bug exists only in a build with the kvmesh_planted tag.
type plantedConfig struct{}

func (n *Node) plantStoreOptions(*store.Options) {}
