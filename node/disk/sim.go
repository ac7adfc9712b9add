package disk

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Sim is a simulated machine for tests: a kernel and a disk under the
// directory root. Its files are real files (so bbolt's mmap and every
// read work as usual), and it also keeps a model of what the disk holds:
// the content of each file as of its last sync, the writes made since,
// and each directory's entries as of its last sync. FS returns the file
// system of the process running now.
//
// Crash(false) is a process crash (kill -9): the process's FS refuses
// everything from then on, and the page cache keeps all it wrote.
// Crash(true) is a power loss: Restart then rebuilds root as a disk would
// come back, with each file's synced content plus, at random, none, all,
// a prefix or a random set of 512-byte sectors of what was written after
// (unwritten holes read as zeros), each directory's synced entries plus a
// random prefix of its unsynced creations, removals and renames, the
// volatile directories (tmpfs) empty, and a new boot id.
//
// A Sim can also fail writes or syncs, run out of space, or lie about
// syncs (SetFault), which is how a test shows that a store's syncs matter.
// All methods are safe for concurrent use.
type Sim struct {
	root     string
	volatile []string

	atomic sync.RWMutex // shared by Atomic, exclusive by Crash

	mu      sync.Mutex
	rng     *rand.Rand
	boot    int
	gen     int // generation of the live process's FS; older ones are dead
	crash   int // 0 none, 1 process crash, 2 power loss: pending Restart
	names   map[string]*inode
	durable map[string]*inode
	ops     map[string][]nsOp
	raw     map[*inode][]byte // raw files' content at a power loss
	fault   Fault
	space   int64 // bytes writes may still add; < 0: unlimited
}

// Fault is what a Sim does wrong on purpose. The zero Fault is none.
type Fault struct {
	// WriteErr fails every write to a seam file, writing nothing.
	WriteErr error
	// SyncErr fails every Sync, Datasync and SyncDir; nothing is made
	// durable. As Linux may after a failed write-back, a failed file sync
	// drops, at random, the file's unsynced writes from the page cache
	// too: the process reads the file without them from then on.
	SyncErr error
	// Lie, when it returns true, makes a sync of that kind and path
	// return nil without making anything durable: a removed fsync.
	Lie func(kind SyncKind, path string) bool
}

// SyncKind says what a sync syncs, for Fault.Lie.
type SyncKind int

const (
	SyncFile      SyncKind = iota // File.Sync or File.Datasync
	SyncDirectory                 // FS.SyncDir
)

type inode struct {
	raw     bool
	lazy    bool   // durable content is the real file's, not read yet
	durable []byte // content as of the last sync
	size    int64  // current size
	pending []pwrite
}

// pwrite is an unsynced write; off < 0 is a truncation to zero.
type pwrite struct {
	off int64
	b   []byte
}

// nsOp is an unsynced change of a directory entry: name now refers to
// ino (nil: removed).
type nsOp struct {
	name string
	ino  *inode
}

// NewSim returns a machine whose disk is root (created if needed; files
// already there count as synced). Directories in volatile (under root)
// are tmpfs: a power loss empties them. seed drives every random choice.
func NewSim(root string, seed uint64, volatile ...string) (*Sim, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	s := &Sim{root: filepath.Clean(root), rng: rand.New(rand.NewPCG(seed, 0x5eed)), space: -1}
	for _, v := range volatile {
		s.volatile = append(s.volatile, filepath.Clean(v))
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load takes the files under root as the synced state.
func (s *Sim) load() error {
	s.names = map[string]*inode{}
	s.durable = map[string]*inode{}
	s.ops = map[string][]nsOp{}
	s.raw = nil
	return filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		ino := &inode{lazy: true, size: fi.Size()}
		s.names[p], s.durable[p] = ino, ino
		return nil
	})
}

// FS returns the file system of the process running now.
func (s *Sim) FS() FS {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &simFS{s: s, gen: s.gen}
}

// SetFault sets what the machine does wrong from now on.
func (s *Sim) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// SetSpace lets writes add at most n more bytes to the files (n < 0:
// unlimited); a write that does not fit writes what fits and fails with
// ENOSPC, as a full disk's short write does.
func (s *Sim) SetSpace(n int64) {
	s.mu.Lock()
	s.space = n
	s.mu.Unlock()
}

// BootID returns the id of the machine's current boot.
func (s *Sim) BootID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootID()
}

func (s *Sim) bootID() string { return fmt.Sprintf("sim-boot-%d", s.boot) }

// Crash crashes the running process at this instant: its FS refuses
// every call from now on (an Atomic in progress finishes first). With
// power, the machine loses power too, and Restart brings the disk back
// as it was synced. The dead process's objects should be closed before
// Restart; a second Crash before Restart only adds the power loss.
func (s *Sim) Crash(power bool) {
	s.atomic.Lock()
	defer s.atomic.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crash == 0 {
		s.gen++
		s.crash = 1
	}
	if power && s.crash == 1 {
		s.crash = 2
		// bbolt's file as of its last commit: no Atomic is running.
		s.raw = map[*inode][]byte{}
		for p, ino := range s.names {
			if ino.raw {
				b, _ := os.ReadFile(p)
				s.raw[ino] = b
			}
		}
	}
}

// Restart ends a crash: after a power loss it rebuilds root as the disk
// comes back and starts a new boot. It returns the FS of the process that
// starts now. Without a crash it just returns the running FS.
func (s *Sim) Restart() (FS, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crash == 2 {
		if err := s.powerUp(); err != nil {
			return nil, err
		}
		s.boot++
	}
	s.crash = 0
	return &simFS{s: s, gen: s.gen}, nil
}

// powerUp rewrites root as the disk holds it after a power loss.
func (s *Sim) powerUp() error {
	names := make(map[string]*inode, len(s.durable))
	for p, ino := range s.durable {
		names[p] = ino
	}
	for _, dir := range sortedKeys(s.ops) {
		ops := s.ops[dir]
		for _, op := range ops[:s.rng.IntN(len(ops)+1)] {
			if op.ino == nil {
				delete(names, op.name)
			} else {
				names[op.name] = op.ino
			}
		}
	}
	for p := range names {
		if s.isVolatile(p) {
			delete(names, p)
		}
	}
	contents := make(map[string][]byte, len(names))
	torn := map[*inode][]byte{}
	for _, p := range sortedKeys(names) {
		ino := names[p]
		b, ok := torn[ino]
		if !ok {
			var err error
			if b, err = s.afterPowerLoss(p, ino); err != nil {
				return err
			}
			torn[ino] = b
		}
		contents[p] = b
	}
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Remove(p)
	})
	if err != nil {
		return err
	}
	for p, b := range contents {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return s.load()
}

// afterPowerLoss is what the disk holds of ino (named p) after a power
// loss: its synced content and, chosen at random, what of its unsynced
// writes reached the disk.
func (s *Sim) afterPowerLoss(p string, ino *inode) ([]byte, error) {
	if ino.raw {
		return s.raw[ino], nil
	}
	if ino.lazy {
		return os.ReadFile(p)
	}
	out := bytes.Clone(ino.durable)
	if len(ino.pending) == 0 {
		return out, nil
	}
	switch s.rng.IntN(4) {
	case 0: // nothing written back
	case 1: // everything
		for _, w := range ino.pending {
			out = apply(out, w.off, w.b)
		}
	case 2: // a prefix of the writes, the last one cut anywhere
		k := s.rng.IntN(len(ino.pending))
		for _, w := range ino.pending[:k] {
			out = apply(out, w.off, w.b)
		}
		w := ino.pending[k]
		if w.off < 0 {
			out = out[:0]
		} else {
			out = apply(out, w.off, w.b[:s.rng.IntN(len(w.b)+1)])
		}
	default: // each 512-byte sector on its own: a torn write-back
		for _, w := range ino.pending {
			if w.off < 0 {
				if s.rng.IntN(2) == 0 {
					out = out[:0]
				}
				continue
			}
			for i := 0; i < len(w.b); {
				off := w.off + int64(i)
				n := min(len(w.b)-i, int(sector-off%sector))
				if s.rng.IntN(2) == 0 {
					out = apply(out, off, w.b[i:i+n])
				}
				i += n
			}
		}
	}
	return out, nil
}

const sector = 512

// apply writes b at off into buf, growing it with zeros as needed; off <
// 0 truncates.
func apply(buf []byte, off int64, b []byte) []byte {
	if off < 0 {
		return buf[:0]
	}
	if end := int(off) + len(b); end > len(buf) {
		buf = append(buf, make([]byte, end-len(buf))...)
	}
	copy(buf[off:], b)
	return buf
}

func (s *Sim) isVolatile(p string) bool {
	for _, v := range s.volatile {
		if p == v || strings.HasPrefix(p, v+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// simFS is one process's view of a Sim.
type simFS struct {
	s   *Sim
	gen int
}

var _ FS = (*simFS)(nil)

// live locks the machine for a call of this process, or fails if the
// process crashed. The caller unlocks s.mu on success.
func (f *simFS) live() error {
	f.s.mu.Lock()
	if f.gen != f.s.gen || f.s.crash != 0 {
		f.s.mu.Unlock()
		return ErrCrashed
	}
	return nil
}

func (f *simFS) path(name string) (string, error) {
	p, err := filepath.Abs(name)
	if err != nil {
		return "", err
	}
	if p != f.s.root && !strings.HasPrefix(p, f.s.root+string(filepath.Separator)) {
		return "", fmt.Errorf("disk: %s is outside the simulated disk %s", name, f.s.root)
	}
	return p, nil
}

// inodeFor returns the inode of p after opening it with flag, creating
// one (as an unsynced directory entry) if the open created the file.
func (s *Sim) inodeFor(p string, flag int) *inode {
	ino := s.names[p]
	if ino == nil {
		ino = &inode{}
		s.names[p] = ino
		s.ops[filepath.Dir(p)] = append(s.ops[filepath.Dir(p)], nsOp{p, ino})
	}
	if flag&os.O_TRUNC != 0 && ino.size > 0 {
		s.materialize(p, ino)
		ino.pending = append(ino.pending, pwrite{off: -1})
		ino.size = 0
	}
	return ino
}

// materialize reads a lazily loaded inode's synced content.
func (s *Sim) materialize(p string, ino *inode) {
	if ino.lazy {
		ino.durable, _ = os.ReadFile(p)
		ino.lazy = false
	}
}

func (f *simFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	if err := f.live(); err != nil {
		return nil, err
	}
	defer f.s.mu.Unlock()
	if ino := f.s.names[p]; ino != nil {
		f.s.materialize(p, ino) // before the open truncates or a write changes it
	}
	// Appends are made with WriteAt at the modelled end: os refuses
	// WriteAt on an O_APPEND file.
	osf, err := os.OpenFile(p, flag&^os.O_APPEND, perm)
	if err != nil {
		return nil, err
	}
	ino := f.s.inodeFor(p, flag)
	sf := &simFile{fs: f, f: osf, p: p, ino: ino, appendMode: flag&os.O_APPEND != 0}
	return sf, nil
}

func (f *simFS) OpenRaw(name string, flag int, perm fs.FileMode) (*os.File, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	if err := f.live(); err != nil {
		return nil, err
	}
	defer f.s.mu.Unlock()
	osf, err := os.OpenFile(p, flag, perm)
	if err != nil {
		return nil, err
	}
	ino := f.s.inodeFor(p, flag&^os.O_TRUNC)
	ino.raw = true
	return osf, nil
}

func (f *simFS) ReadFile(name string) ([]byte, error) {
	if err := f.live(); err != nil {
		return nil, err
	}
	defer f.s.mu.Unlock()
	return os.ReadFile(name)
}

func (f *simFS) ReadDir(dir string) ([]fs.DirEntry, error) {
	if err := f.live(); err != nil {
		return nil, err
	}
	defer f.s.mu.Unlock()
	return os.ReadDir(dir)
}

func (f *simFS) Stat(name string) (fs.FileInfo, error) {
	if err := f.live(); err != nil {
		return nil, err
	}
	defer f.s.mu.Unlock()
	return os.Stat(name)
}

func (f *simFS) Remove(name string) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	if err := f.live(); err != nil {
		return err
	}
	defer f.s.mu.Unlock()
	if err := os.Remove(p); err != nil {
		return err
	}
	if _, ok := f.s.names[p]; ok {
		delete(f.s.names, p)
		f.s.ops[filepath.Dir(p)] = append(f.s.ops[filepath.Dir(p)], nsOp{p, nil})
	}
	return nil
}

func (f *simFS) Rename(from, to string) error {
	pf, err := f.path(from)
	if err != nil {
		return err
	}
	pt, err := f.path(to)
	if err != nil {
		return err
	}
	if err := f.live(); err != nil {
		return err
	}
	defer f.s.mu.Unlock()
	if err := os.Rename(pf, pt); err != nil {
		return err
	}
	ino := f.s.names[pf]
	if ino == nil {
		return nil // a directory: not modelled
	}
	delete(f.s.names, pf)
	f.s.names[pt] = ino
	f.s.ops[filepath.Dir(pf)] = append(f.s.ops[filepath.Dir(pf)], nsOp{pf, nil})
	f.s.ops[filepath.Dir(pt)] = append(f.s.ops[filepath.Dir(pt)], nsOp{pt, ino})
	return nil
}

func (f *simFS) MkdirAll(dir string, perm fs.FileMode) error {
	p, err := f.path(dir)
	if err != nil {
		return err
	}
	if err := f.live(); err != nil {
		return err
	}
	defer f.s.mu.Unlock()
	return os.MkdirAll(p, perm)
}

func (f *simFS) SyncDir(dir string) error {
	p, err := f.path(dir)
	if err != nil {
		return err
	}
	if err := f.live(); err != nil {
		return err
	}
	defer f.s.mu.Unlock()
	if f.s.fault.SyncErr != nil {
		return f.s.fault.SyncErr
	}
	if f.s.fault.Lie != nil && f.s.fault.Lie(SyncDirectory, p) {
		return nil
	}
	for _, op := range f.s.ops[p] {
		if op.ino == nil {
			delete(f.s.durable, op.name)
		} else {
			f.s.durable[op.name] = op.ino
		}
	}
	delete(f.s.ops, p)
	return nil
}

func (f *simFS) Atomic(fn func() error) error {
	f.s.atomic.RLock()
	defer f.s.atomic.RUnlock()
	if err := f.live(); err != nil {
		return err
	}
	f.s.mu.Unlock()
	return fn()
}

func (f *simFS) BootID() string {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.s.bootID()
}

// simFile is a file opened through a simFS.
type simFile struct {
	fs         *simFS
	f          *os.File
	p          string
	ino        *inode
	off        int64
	appendMode bool
}

func (sf *simFile) Name() string { return sf.f.Name() }

func (sf *simFile) Write(b []byte) (int, error) {
	s := sf.fs.s
	if err := sf.fs.live(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if s.fault.WriteErr != nil {
		return 0, s.fault.WriteErr
	}
	if sf.appendMode {
		sf.off = sf.ino.size
	}
	want := b
	var errSpace error
	if s.space >= 0 {
		if grow := sf.off + int64(len(b)) - sf.ino.size; grow > s.space {
			want = b[:max(0, int64(len(b))-(grow-s.space))]
			errSpace = syscall.ENOSPC
		}
	}
	s.materialize(sf.p, sf.ino)
	n, err := sf.f.WriteAt(want, sf.off)
	if n > 0 {
		sf.ino.pending = append(sf.ino.pending, pwrite{off: sf.off, b: bytes.Clone(want[:n])})
		if end := sf.off + int64(n); end > sf.ino.size {
			if s.space >= 0 {
				s.space -= end - sf.ino.size
			}
			sf.ino.size = end
		}
		sf.off += int64(n)
	}
	if err == nil {
		err = errSpace
	}
	return n, err
}

func (sf *simFile) Sync() error     { return sf.sync() }
func (sf *simFile) Datasync() error { return sf.sync() }

func (sf *simFile) sync() error {
	s := sf.fs.s
	if err := sf.fs.live(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.fault.SyncErr != nil {
		if len(sf.ino.pending) > 0 && s.rng.IntN(2) == 0 {
			s.materialize(sf.p, sf.ino)
			if err := os.WriteFile(sf.p, sf.ino.durable, 0o600); err == nil {
				sf.ino.pending, sf.ino.size = nil, int64(len(sf.ino.durable))
			}
		}
		return s.fault.SyncErr
	}
	if s.fault.Lie != nil && s.fault.Lie(SyncFile, sf.p) {
		return nil
	}
	s.materialize(sf.p, sf.ino)
	for _, w := range sf.ino.pending {
		sf.ino.durable = apply(sf.ino.durable, w.off, w.b)
	}
	sf.ino.pending = nil
	return nil
}

func (sf *simFile) Close() error { return sf.f.Close() }
