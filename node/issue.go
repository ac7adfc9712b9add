package node

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// issuer issues the dots of the writes this node coordinates, without
// waiting for the store's fsync: the new object is computed from the
// newest object this node has issued for the key (kept in memory until
// its commit is durable) or else from the store, under the lock of the
// key's stripe, and it goes to the other owners as soon as its record is
// in the local log file (logged), in parallel with the local fsync. So a
// node issues each of its dots for a key exactly once and in order (the
// dotted-version-vector invariant), and no dot leaves the node before its
// own log holds it (identity.go).
//
// No lock is held across a disk read: when the key's newest object is
// neither pending nor in the store's memtables, it is read from bbolt on
// a reader goroutine (reads.go), and the writes of that key that arrive
// meanwhile wait in line for it (loading), so none can be issued from an
// object older than another's.
type issuer struct {
	st        *store.Store
	self      string
	now       func() time.Time  // sibling timestamps
	conflicts version.Conflicts // how a write applies to the key's object
	hlc       *hlc              // timestamps in last-writer-wins mode
	read      func(p int, key string, done func(*protocol.Object, error))
	seed      maphash.Seed
	stripes   [64]stripe
	// floor is the highest counter of this actor in a clock that
	// tombstone compaction purged (compact.go): a key with no stored
	// object is issued from it, so that a new dot never repeats one that
	// a replica still holding the purged tombstone has seen.
	floor atomic.Uint64
}

type stripe struct {
	mu      sync.Mutex
	pending map[string]*protocol.Object // issued, local commit not yet known
	loading map[string][]*issueReq      // keys being read from bbolt: the writes waiting for it
}

// issueReq is one write to issue and where its outcome goes.
type issueReq struct {
	p      int
	key    string
	ctx    protocol.Clock
	sib    protocol.Sibling
	ttl    time.Duration // > 0: sib expires that long after its Time
	logged func(*protocol.Object)
	done   func(error)
	failed func(error)
}

func newIssuer(st *store.Store, self string, now func() time.Time, read func(int, string, func(*protocol.Object, error)), c version.Conflicts, h *hlc) *issuer {
	is := &issuer{st: st, self: self, now: now, read: read, conflicts: c, hlc: h, seed: maphash.MakeSeed()}
	for i := range is.stripes {
		is.stripes[i].pending = make(map[string]*protocol.Object)
		is.stripes[i].loading = make(map[string][]*issueReq)
	}
	return is
}

// issue applies the client write sib with context ctx to the node's newest
// object of key and queues the result for the local commit. The sibling
// gets the time of issue, and with a ttl > 0 its expiry: that time plus
// ttl, fixed here once so that every replica stores the same. logged is
// called with the new object once its record is in the log file (the
// object may leave the node then), done after fsync or with the commit's
// error (logged then may or may not have been called). Both run on the
// store's committer and must not block. If nothing can be issued, failed
// gets the reason instead (and neither of the others is called). issue
// never blocks on the disk; failed may be called before it returns.
func (is *issuer) issue(p int, key string, ctx protocol.Clock, sib protocol.Sibling, ttl time.Duration, logged func(*protocol.Object), done, failed func(error)) {
	r := &issueReq{p: p, key: key, ctx: ctx, sib: sib, ttl: ttl, logged: logged, done: done, failed: failed}
	s := &is.stripes[maphash.String(is.seed, key)%uint64(len(is.stripes))]
	s.mu.Lock()
	if waiting, ok := s.loading[key]; ok {
		s.loading[key] = append(waiting, r) // after the write whose read is out
		s.mu.Unlock()
		return
	}
	base, inflight := s.pending[key]
	if !inflight {
		obj, cached, err := is.st.Cached(p, key)
		if err != nil {
			s.mu.Unlock()
			failed(err)
			return
		}
		if !cached {
			s.loading[key] = []*issueReq{r}
			s.mu.Unlock()
			is.read(p, key, func(obj *protocol.Object, err error) { is.loaded(s, key, obj, err) })
			return
		}
		base = obj
	}
	err := is.apply(s, base, r)
	s.mu.Unlock()
	if err != nil {
		failed(err)
	}
}

// loaded issues, in order, the writes that waited for key's object to be
// read from bbolt, the first from obj and each next from the one before.
func (is *issuer) loaded(s *stripe, key string, obj *protocol.Object, err error) {
	s.mu.Lock()
	waiting := s.loading[key]
	delete(s.loading, key)
	var fails []func()
	for _, r := range waiting {
		if err == nil {
			if base, inflight := s.pending[key]; inflight {
				obj = base
			}
			if aerr := is.apply(s, obj, r); aerr != nil {
				fails = append(fails, func() { r.failed(aerr) })
			}
			continue
		}
		fails = append(fails, func() { r.failed(err) })
	}
	s.mu.Unlock()
	for _, f := range fails {
		f()
	}
}

// apply issues r's dot from base and queues the commit; s.mu is held.
// Nothing is issued when it returns an error.
func (is *issuer) apply(s *stripe, base *protocol.Object, r *issueReq) error {
	r.sib.Time = is.now().UnixNano()
	if is.conflicts == version.LastWriterWins {
		// Later than every write of the key this node holds, so that a
		// write that saw another wins over it.
		r.sib.Time = is.hlc.stamp(r.sib.Time, version.MaxTime(base))
	}
	r.sib.Expires = 0
	if r.ttl > 0 {
		r.sib.Expires = addSat(r.sib.Time, int64(r.ttl))
	}
	if f := is.floor.Load(); base == nil && f > 0 {
		base = &protocol.Object{Clock: protocol.Clock{{Node: is.self, Counter: f}}}
	}
	obj, err := is.conflicts.Update(base, r.ctx, is.self, r.sib)
	if err != nil {
		return err
	}
	var sent atomic.Bool
	err = is.st.ApplyLogged(r.p, r.key, syncInto(is.conflicts, obj), func() {
		sent.Store(true)
		r.logged(obj)
	}, func(_ *protocol.Object, err error) {
		// After a failed commit the object stays pending if it was sent:
		// its dot may be on other replicas, so it must never be issued
		// again (and the store takes no more writes anyway). One that was
		// never sent is forgotten.
		if err == nil || !sent.Load() {
			is.forget(s, r.key, obj)
		}
		r.done(err)
	})
	if err != nil {
		return err
	}
	s.pending[r.key] = obj
	return nil
}

// forget drops obj from the pending objects once it is durable (or was
// never sent), unless a newer write of the key was issued since.
func (is *issuer) forget(s *stripe, key string, obj *protocol.Object) {
	s.mu.Lock()
	if s.pending[key] == obj {
		delete(s.pending, key)
	}
	s.mu.Unlock()
}

// addSat is t+d for d > 0, saturated at math.MaxInt64.
func addSat(t, d int64) int64 {
	if t > math.MaxInt64-d {
		return math.MaxInt64
	}
	return t + d
}
