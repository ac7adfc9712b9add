package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kvmesh/kvmesh/protocol"
)

// The write-ahead log. A batch of writes is durable once its records are
// appended to the current log segment and the segment is fdatasynced: one
// sequential write and one sync per batch, where a bbolt commit rewrites a
// page per key and syncs twice. The records are also kept in memory (the
// memtable) and reach bbolt later, many batches in one transaction: a
// checkpoint. A checkpoint stores, in the same bbolt transaction, the
// sequence number of the last segment it covers (metaWALApplied); only
// then are those segments removed. Open replays every segment after that
// number, so a write is in bbolt, in a segment, or both, and never lost.
//
// A segment is the file "<db>.wal.<seq>" (seq: 16 hex digits), a plain
// sequence of records:
//
//	length  uint32 little-endian: bytes of body
//	crc     uint32 little-endian: CRC-32C of body
//	body    uint16 big-endian length of the bbolt key, the bbolt key, the record (protocol.EncodeObject)
//
// Each record holds a key's whole object after the write, so replaying a
// record is a plain put and replaying in order leaves each key's last
// state. Segments are only appended to and a new one starts after each
// checkpoint, so the only damage a crash can do is a torn tail of the
// newest segment: records after the first one that does not check out
// were never acknowledged (their batch's sync had not returned). A bad
// record anywhere else is corruption, and Open refuses to guess.

// walHeader is the length and CRC before each record's body.
const walHeader = 8

// metaWALApplied is the meta entry holding the last segment a checkpoint
// covered (8 bytes, big-endian).
const metaWALApplied = "wal-applied"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the log record of (bkey, v) to buf.
func appendRecord(buf, bkey, v []byte) []byte {
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(2+len(bkey)+len(v)))
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(bkey)))
	buf = append(buf, bkey...)
	buf = append(buf, v...)
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+walHeader:], castagnoli))
	return buf
}

// parseRecord reads the record at the start of b. It returns the key, the
// value (both aliasing b) and the record's length, or ok = false if b does
// not start with a whole, intact record.
func parseRecord(b []byte) (bkey, v []byte, n int, ok bool) {
	if len(b) < walHeader {
		return nil, nil, 0, false
	}
	size := binary.LittleEndian.Uint32(b)
	// A body holds at least the key length, a partition and a one-byte
	// key, and a one-byte record; a zero length is where a write stopped.
	if size < 2+3+1 || uint64(size) > uint64(len(b)-walHeader) {
		return nil, nil, 0, false
	}
	body := b[walHeader : walHeader+int(size)]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, nil, 0, false
	}
	klen := int(binary.BigEndian.Uint16(body))
	if klen < 3 || klen > 2+protocol.MaxKeyLen || 2+klen >= len(body) {
		return nil, nil, 0, false
	}
	return body[2 : 2+klen], body[2+klen:], walHeader + int(size), true
}

// wal is the segment being appended to. Only the committer uses it.
type wal struct {
	db   string // the bbolt file's path; segments are named after it
	seq  uint64
	f    *os.File
	size int64 // bytes appended to this segment
}

func segmentPath(db string, seq uint64) string {
	return fmt.Sprintf("%s.wal.%016x", db, seq)
}

// listSegments returns the sequence numbers of db's segments, ascending.
func listSegments(db string) ([]uint64, error) {
	entries, err := os.ReadDir(filepath.Dir(db))
	if err != nil {
		return nil, err
	}
	prefix := filepath.Base(db) + ".wal."
	var seqs []uint64
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || len(name) != 16 {
			continue
		}
		seq, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// createSegment creates segment seq, empty, and syncs the directory so
// that the file, and so every record synced into it, survives a crash.
func createSegment(db string, seq uint64) (*wal, error) {
	f, err := os.OpenFile(segmentPath(db, seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(db)); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &wal{db: db, seq: seq, f: f}, nil
}

// append writes b at the end of the segment and syncs it.
func (w *wal) append(b []byte) error {
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("wal %016x: write: %w", w.seq, err)
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("wal %016x: sync: %w", w.seq, err)
	}
	return nil
}

// rotate closes the segment and starts the next one.
func (w *wal) rotate() error {
	next, err := createSegment(w.db, w.seq+1)
	if err != nil {
		return fmt.Errorf("wal: start segment %016x: %w", w.seq+1, err)
	}
	_ = w.f.Close() // every byte in it is synced already
	*w = *next
	return nil
}

func (w *wal) close() error { return w.f.Close() }

// removeSegments removes db's segments up to and including seq. A segment
// that is already gone is fine.
func removeSegments(db string, upTo uint64) error {
	seqs, err := listSegments(db)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if seq > upTo {
			break
		}
		if err := os.Remove(segmentPath(db, seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readSegment calls fn for each record of segment seq in order. A record
// that does not check out ends the segment: if last is true (the newest
// segment, whose tail a crash may have torn) that is its end, otherwise
// it is an error.
func readSegment(db string, seq uint64, last bool, fn func(bkey, v []byte)) error {
	b, err := os.ReadFile(segmentPath(db, seq))
	if err != nil {
		return err
	}
	for off := 0; off < len(b); {
		bkey, v, n, ok := parseRecord(b[off:])
		if !ok {
			if last {
				return nil
			}
			return fmt.Errorf("%w: wal segment %s is corrupt at byte %d of %d", protocol.ErrInternal, segmentPath(db, seq), off, len(b))
		}
		fn(bkey, v)
		off += n
	}
	return nil
}

func syncDir(dir string) error {
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
