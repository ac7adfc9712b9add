package store

import (
	"bytes"
	"crypto/rand"
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

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/protocol"
)

// The write-ahead log. A batch of writes is durable once its frame is
// appended to the current log segment and the segment is fdatasynced: one
// sequential write and one sync per batch, where a bbolt commit rewrites a
// page per key and syncs twice. The records are also kept in memory (the
// memtable) and reach bbolt later, many batches in one transaction: a
// checkpoint. A checkpoint stores, in the same bbolt transaction, the
// sequence number of the last segment it covers (metaWALApplied); only
// then are those segments removed. Open replays every segment after that
// number, so a write is in bbolt, in a segment, or both, and never lost.
//
// A segment is the file "<db>.wal.<seq>" (seq: 16 hex digits): a header,
// then one frame per batch.
//
//	header  "kvmwal2\n", seq uint64, nonce uint64, CRC-32C of those 24 bytes uint32, 4 zero bytes
//	frame   magic uint32, length uint32, crc uint32, body (length bytes)
//	body    records: uint16 big-endian key length, bbolt key, uint32 value length, stored record
//
// All integers but the key length are little-endian. A frame's crc is the
// CRC-32C of the segment's nonce, the length and the body: the nonce is
// random per segment and never leaves the node, so no value a client
// stores can pass for a frame. Each record holds a key's whole object
// after the write, so replaying is a plain put, and in order leaves each
// key's last state.
//
// # Torn or corrupt
//
// The committer appends a batch's frame and syncs it before it appends
// the next, and starts a new segment only after a sync, so at any time at
// most one frame is unsynced: the last one of the newest segment. A crash
// can tear that frame anywhere (a cut, a hole of zeros, a mix of old and
// new sectors), and its writes were never acknowledged. Anything else is
// corruption of acknowledged data: a bad frame with a valid frame
// anywhere after it, a bad byte in an older segment, a bad header. Open
// then refuses with a *CorruptError naming the file and the offset and
// changes nothing, rather than drop what was acknowledged.

const (
	segHeaderLen   = 32
	frameHeaderLen = 12
	frameMagic     = 0x666d766b // "kvmf"
	// minRecordLen is the smallest record: lengths, a partition and a
	// one-byte key, a checksum and a one-byte object.
	minRecordLen = 2 + 3 + 4 + recordCRCLen + 1
)

var segMagic = []byte("kvmwal2\n")

// metaWALApplied is the meta entry holding the last segment a checkpoint
// covered (8 bytes, big-endian).
const metaWALApplied = "wal-applied"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CorruptError is returned by Open when a file of the store is damaged
// where a crash cannot have damaged it: acknowledged data may be lost, so
// the store refuses to guess. It wraps protocol.ErrInternal and
// ErrCorrupt. Nothing was changed; Quarantine moves the files aside.
type CorruptError struct {
	File   string
	Offset int64 // -1 when the damage has no single offset
	Reason string
}

// ErrCorrupt matches every *CorruptError with errors.Is.
var ErrCorrupt = errors.New("store is corrupt")

func (e *CorruptError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = fmt.Sprintf(" at byte %d", e.Offset)
	}
	return fmt.Sprintf("store: %s is corrupt%s: %s", e.File, at, e.Reason)
}

func (e *CorruptError) Is(target error) bool {
	return target == ErrCorrupt || target == protocol.ErrInternal
}

// appendRecord appends the body record of (bkey, v) to buf.
func appendRecord(buf, bkey, v []byte) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(bkey)))
	buf = append(buf, bkey...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(v)))
	return append(buf, v...)
}

// parseRecord reads the record at the start of b: the key and the value
// (both aliasing b) and the record's length, or ok = false.
func parseRecord(b []byte) (bkey, v []byte, n int, ok bool) {
	if len(b) < 2 {
		return nil, nil, 0, false
	}
	klen := int(binary.BigEndian.Uint16(b))
	if klen < 3 || klen > 2+protocol.MaxKeyLen || len(b) < 2+klen+4 {
		return nil, nil, 0, false
	}
	vlen := binary.LittleEndian.Uint32(b[2+klen:])
	start := 2 + klen + 4
	if vlen < recordCRCLen+1 || uint64(vlen) > uint64(len(b)-start) {
		return nil, nil, 0, false
	}
	return b[2 : 2+klen], b[start : start+int(vlen)], start + int(vlen), true
}

// frameCRC is the checksum of a frame's length and body under nonce.
func frameCRC(nonce uint64, length uint32, body []byte) uint32 {
	var h [12]byte
	binary.LittleEndian.PutUint64(h[:], nonce)
	binary.LittleEndian.PutUint32(h[8:], length)
	return crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, body)
}

// beginFrame reserves a frame header at the end of buf; sealFrame fills
// it in once the body (the records appended after it) is complete.
func beginFrame(buf []byte) []byte { return append(buf, make([]byte, frameHeaderLen)...) }

func sealFrame(buf []byte, start int, nonce uint64) []byte {
	body := buf[start+frameHeaderLen:]
	binary.LittleEndian.PutUint32(buf[start:], frameMagic)
	binary.LittleEndian.PutUint32(buf[start+4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+8:], frameCRC(nonce, uint32(len(body)), body))
	return buf
}

// parseFrame checks the frame at b[off:]: it returns its body and total
// length, or ok = false.
func parseFrame(b []byte, off int, nonce uint64) (body []byte, n int, ok bool) {
	if len(b)-off < frameHeaderLen+minRecordLen || binary.LittleEndian.Uint32(b[off:]) != frameMagic {
		return nil, 0, false
	}
	length := binary.LittleEndian.Uint32(b[off+4:])
	if length < minRecordLen || uint64(length) > uint64(len(b)-off-frameHeaderLen) {
		return nil, 0, false
	}
	body = b[off+frameHeaderLen : off+frameHeaderLen+int(length)]
	if frameCRC(nonce, length, body) != binary.LittleEndian.Uint32(b[off+8:]) {
		return nil, 0, false
	}
	return body, frameHeaderLen + int(length), true
}

// wal is the segment being appended to. Only the committer uses it.
type wal struct {
	fs    disk.FS
	db    string // the bbolt file's path; segments are named after it
	seq   uint64
	nonce uint64
	f     disk.File
	size  int64 // bytes in this segment
}

func segmentPath(db string, seq uint64) string {
	return fmt.Sprintf("%s.wal.%016x", db, seq)
}

// listSegments returns the sequence numbers of db's segments, ascending.
func listSegments(fsys disk.FS, db string) ([]uint64, error) {
	entries, err := fsys.ReadDir(filepath.Dir(db))
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

// createSegment creates segment seq with its header, syncs it and the
// directory, so that the file, and so every frame synced into it,
// survives a crash.
func createSegment(fsys disk.FS, db string, seq uint64) (*wal, error) {
	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return nil, err
	}
	nonce := binary.LittleEndian.Uint64(nb[:])
	h := make([]byte, 0, segHeaderLen)
	h = append(h, segMagic...)
	h = binary.LittleEndian.AppendUint64(h, seq)
	h = binary.LittleEndian.AppendUint64(h, nonce)
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	h = append(h, 0, 0, 0, 0)
	f, err := fsys.OpenFile(segmentPath(db, seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err = f.Write(h); err == nil {
		err = f.Datasync()
	}
	if err == nil {
		err = fsys.SyncDir(filepath.Dir(db))
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &wal{fs: fsys, db: db, seq: seq, nonce: nonce, f: f, size: segHeaderLen}, nil
}

// write appends b (whole frames) to the segment, without syncing it.
func (w *wal) write(b []byte) error {
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err == nil && n < len(b) {
		err = fmt.Errorf("short write of %d of %d bytes", n, len(b))
	}
	if err != nil {
		return fmt.Errorf("wal %016x: write: %w", w.seq, err)
	}
	return nil
}

// sync makes what was written durable.
func (w *wal) sync() error {
	if err := w.f.Datasync(); err != nil {
		return fmt.Errorf("wal %016x: sync: %w", w.seq, err)
	}
	return nil
}

// rotate closes the segment and starts the next one.
func (w *wal) rotate() error {
	next, err := createSegment(w.fs, w.db, w.seq+1)
	if err != nil {
		return fmt.Errorf("wal: start segment %016x: %w", w.seq+1, err)
	}
	_ = w.f.Close() // every byte in it is synced already
	*w = *next
	return nil
}

func (w *wal) close() error { return w.f.Close() }

// removeSegments removes db's segments up to and including seq. A segment
// that is already gone is fine. The removals are not synced: a segment a
// crash brings back is one a checkpoint covered, and Open skips it.
func removeSegments(fsys disk.FS, db string, upTo uint64) error {
	seqs, err := listSegments(fsys, db)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if seq > upTo {
			break
		}
		if err := fsys.Remove(segmentPath(db, seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readSegment calls fn for each record of segment seq in order. If last
// is true (the newest segment) a torn final frame ends it; any other
// damage is a *CorruptError. fn's slices alias the file's bytes.
func readSegment(fsys disk.FS, db string, seq uint64, last bool, fn func(bkey, v []byte) error) error {
	name := segmentPath(db, seq)
	b, err := fsys.ReadFile(name)
	if err != nil {
		return err
	}
	corrupt := func(off int, reason string) error {
		return &CorruptError{File: name, Offset: int64(off), Reason: reason}
	}
	if len(b) < segHeaderLen || !bytes.Equal(b[:len(segMagic)], segMagic) ||
		crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		if last && tornHeader(b) {
			return nil // created by a crash that tore its header: never held a frame
		}
		return corrupt(0, "bad segment header")
	}
	if got := binary.LittleEndian.Uint64(b[8:]); got != seq {
		return corrupt(8, fmt.Sprintf("header says segment %016x", got))
	}
	nonce := binary.LittleEndian.Uint64(b[16:])
	for off := segHeaderLen; off < len(b); {
		body, n, ok := parseFrame(b, off, nonce)
		if !ok {
			if !last {
				return corrupt(off, "bad frame in a segment that was synced whole")
			}
			if next := findFrame(b, off+1, nonce); next >= 0 {
				return corrupt(off, fmt.Sprintf("bad frame followed by a valid one at byte %d: acknowledged writes follow it", next))
			}
			return nil // the torn last frame: never acknowledged
		}
		for roff := 0; roff < len(body); {
			bkey, v, rn, ok := parseRecord(body[roff:])
			if !ok {
				return corrupt(off+frameHeaderLen+roff, "bad record in a frame whose checksum holds")
			}
			if err := fn(bkey, v); err != nil {
				return err
			}
			roff += rn
		}
		off += n
	}
	return nil
}

// findFrame returns the offset of the first valid frame at or after
// from, or -1.
func findFrame(b []byte, from int, nonce uint64) int {
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], frameMagic)
	for from < len(b) {
		i := bytes.Index(b[from:], magic[:])
		if i < 0 {
			return -1
		}
		if _, _, ok := parseFrame(b, from+i, nonce); ok {
			return from + i
		}
		from += i + 1
	}
	return -1
}

// tornHeader tells whether b, the newest segment, is what a crash leaves
// of a header that was never synced: a prefix of it, or zeros where it
// would be. Frames are written only after the header is synced whole, so
// such a segment never held one.
func tornHeader(b []byte) bool {
	if len(b) > segHeaderLen {
		return false
	}
	if allZero(b) {
		return true
	}
	n := min(len(b), len(segMagic))
	return len(b) < segHeaderLen && bytes.Equal(b[:n], segMagic[:n])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// The stored record: what bbolt holds for a key (and a log record
// carries), the object's encoding behind a CRC-32C of the bbolt key and
// the encoding, so that a flipped bit in a value, or a record under the
// wrong key, is caught when it is read.
const recordCRCLen = 4

func sealRecord(bkey, obj []byte) []byte {
	out := make([]byte, recordCRCLen, recordCRCLen+len(obj))
	binary.LittleEndian.PutUint32(out, crc32.Update(crc32.Checksum(bkey, castagnoli), castagnoli, obj))
	return append(out, obj...)
}

// openRecord checks a stored record and returns the object's encoding.
func openRecord(bkey, v []byte) ([]byte, bool) {
	if len(v) < recordCRCLen {
		return nil, false
	}
	obj := v[recordCRCLen:]
	return obj, crc32.Update(crc32.Checksum(bkey, castagnoli), castagnoli, obj) == binary.LittleEndian.Uint32(v)
}
