//go:build unix

package freeport

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// claimDir holds one file per port claimed by a live process.
var claimDir = filepath.Join(os.TempDir(), "kvmesh-freeport")

// claim takes an exclusive lock on port p's file, kept (its descriptor
// never closed) until this process exits, when the kernel releases it:
// false when another live process holds it. Where the directory cannot
// be made, every port counts as claimed by nobody else.
func claim(p int) bool {
	if err := os.MkdirAll(claimDir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(claimDir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return false
	}
	claimed = append(claimed, f) // held for the life of the process
	return true
}

// claimed keeps the claimed ports' files open (under portsMu).
var claimed []*os.File
