//go:build !unix

package freeport

// claim claims nothing where file locks are not at hand: ports are then
// unique within the process only.
func claim(int) bool { return true }
