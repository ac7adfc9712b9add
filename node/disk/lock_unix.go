//go:build unix

package disk

import (
	"errors"
	"os"
	"syscall"
)

// ErrLocked is returned by TryLock when another open file holds the lock.
var ErrLocked = errors.New("disk: file is locked by another process")

// TryLock takes the exclusive advisory lock bbolt takes on its file
// (flock), without waiting: ErrLocked if a running store holds it. The
// lock goes with f's Close.
func TryLock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrLocked
		case !errors.Is(err, syscall.EINTR):
			return err
		}
	}
}
