// Package disk is the file-system seam under a node: every write, sync,
// create, rename and remove its store and identity make go through an FS.
// OS is the real one. Sim is a simulated machine for tests: its files are
// real files under one directory, but it remembers what was synced, so a
// power loss keeps only that (and tears the rest at random, as a kernel's
// write-back and a disk's sectors may), while a process crash keeps
// everything written. A kill -9 or a copy of the files cannot tell a store
// that fsyncs from one that does not; a Sim power loss can.
//
// bbolt does its own I/O on an *os.File (OpenRaw) and syncs inside every
// commit, so its file is modelled at commit granularity: each bbolt
// transaction runs inside Atomic, and a crash happens between two of them,
// never inside one (bbolt's own power-failure tests cover the inside).
package disk

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file system a node's files live on. Paths are the operating
// system's. Implementations are safe for concurrent use.
type FS interface {
	// OpenFile opens name as os.OpenFile does; writes and syncs of the
	// returned file go through the seam. Only sequential writes are
	// supported (O_APPEND, or from offset 0 after O_TRUNC or O_CREATE|O_EXCL).
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// OpenRaw opens a file whose I/O bypasses the seam: bbolt's. Every
	// write to it must happen inside Atomic.
	OpenRaw(name string, flag int, perm fs.FileMode) (*os.File, error)
	ReadFile(name string) ([]byte, error)
	ReadDir(dir string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// Remove removes a file (not a directory). Like Rename and file
	// creation, it is durable only once the directory is synced.
	Remove(name string) error
	Rename(from, to string) error
	// MkdirAll creates dir and its parents. (Sim treats directories
	// themselves as durable at once.)
	MkdirAll(dir string, perm fs.FileMode) error
	// SyncDir makes the creations, removals and renames of dir's entries
	// durable (fsync of the directory).
	SyncDir(dir string) error
	// Atomic runs fn, a write to a raw file that syncs before it returns
	// (a bbolt transaction). A Sim crash waits for it and refuses it after.
	Atomic(fn func() error) error
	// BootID identifies the running operating system boot: it changes
	// when the machine restarts, so a page cache the process saw is gone.
	// Empty when unknown.
	BootID() string
}

// File is an open file of an FS.
type File interface {
	Write(b []byte) (int, error)
	// Sync makes the file's data and metadata durable (fsync).
	Sync() error
	// Datasync makes the file's data and size durable (fdatasync).
	Datasync() error
	Close() error
	Name() string
}

// ErrCrashed is returned by every call on the FS of a Sim process that
// crashed: nothing the dead process does reaches the disk.
var ErrCrashed = errors.New("disk: the process crashed")

// OS is the real file system.
type OS struct{}

var _ FS = OS{}

type osFile struct{ *os.File }

func (f osFile) Datasync() error { return fdatasync(f.File) }

func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OS) OpenRaw(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

func (OS) ReadFile(name string) ([]byte, error)        { return os.ReadFile(name) }
func (OS) ReadDir(dir string) ([]fs.DirEntry, error)   { return os.ReadDir(dir) }
func (OS) Stat(name string) (fs.FileInfo, error)       { return os.Stat(name) }
func (OS) Remove(name string) error                    { return os.Remove(name) }
func (OS) Rename(from, to string) error                { return os.Rename(from, to) }
func (OS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }
func (OS) Atomic(fn func() error) error                { return fn() }
func (OS) BootID() string                              { return bootID() }

func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFile writes b to name through fsys, replacing it atomically: it
// writes a temporary file beside it, syncs it if sync is set, renames it
// over name and, if sync is set, syncs the directory.
func WriteFile(fsys FS, name string, b []byte, perm fs.FileMode, sync bool) error {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil && sync {
		err = fsys.SyncDir(dirOf(name))
	}
	if err != nil {
		_ = fsys.Remove(tmp)
	}
	return err
}

func dirOf(name string) string { return filepath.Dir(name) }
