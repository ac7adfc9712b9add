//go:build !unix

package disk

import (
	"errors"
	"os"
)

// ErrLocked is returned by TryLock when another open file holds the lock.
var ErrLocked = errors.New("disk: file is locked by another process")

// TryLock does nothing where there is no flock.
func TryLock(f *os.File) error { return nil }
