//go:build !kvmesh_planted

package main

import (
	"flag"

	"github.com/kvmesh/kvmesh/node"
)

// plantedFlags registers nothing in a product build.
func plantedFlags(*flag.FlagSet, *node.Config) {}
