package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Compact rewrites the bbolt file of the stopped store at path into a new
// file holding only its live pages, and puts it in place: bbolt reuses
// the pages that deletes (tombstone compaction, dropped partitions) free,
// but never shrinks its file. It first opens and closes the store, which
// replays its log into bbolt and checks it, so the file is all there is.
// progress, if not nil, is called about every 200ms with the bytes
// written so far and the old file's size. It returns the sizes before and
// after. A crash leaves either the old file or the new one in place (a
// rename), and a stray path+".compact" that the next Compact replaces.
func Compact(path string, opts Options, progress func(written, total int64)) (before, after int64, err error) {
	s, err := Open(path, opts)
	if err != nil {
		return 0, 0, err
	}
	if err := s.Close(); err != nil {
		return 0, 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	before = fi.Size()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return 0, 0, openError(path, time.Second, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return 0, 0, err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if fi, err := os.Stat(tmp); err == nil && progress != nil {
					progress(fi.Size(), before)
				}
			}
		}
	}()
	err = bolt.Compact(dst, src, 64<<20)
	close(stop)
	<-done
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return before, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return before, 0, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return before, 0, err
		}
	}
	fi, err = os.Stat(path)
	if err != nil {
		return before, 0, err
	}
	if progress != nil {
		progress(fi.Size(), before)
	}
	return before, fi.Size(), nil
}
