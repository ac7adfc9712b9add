//go:build !linux

package disk

import "os"

// fdatasync is fsync where the platform has no fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }

// bootID is unknown here: a node then never trusts a page cache it did
// not see written.
func bootID() string { return "" }
