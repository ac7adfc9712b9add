package node

import (
	"hash/maphash"
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
// its commit is durable) or else from the store, under a per-key stripe
// lock, and it goes to the other owners as soon as its record is in the
// local log file (logged), in parallel with the local fsync. So a node
// issues each of its dots for a key exactly once and in order (the
// dotted-version-vector invariant), and no dot leaves the node before its
// own log holds it (identity.go).
type issuer struct {
	st      *store.Store
	self    string
	now     func() time.Time // sibling timestamps
	seed    maphash.Seed
	stripes [64]stripe
}

type stripe struct {
	mu      sync.Mutex
	pending map[string]*protocol.Object // issued, local commit not yet known
}

func newIssuer(st *store.Store, self string, now func() time.Time) *issuer {
	is := &issuer{st: st, self: self, now: now, seed: maphash.MakeSeed()}
	for i := range is.stripes {
		is.stripes[i].pending = make(map[string]*protocol.Object)
	}
	return is
}

// issue applies the client write sib with context ctx to the node's newest
// object of key and queues the result for the local commit. logged is
// called with the new object once its record is in the log file (the
// object may leave the node then), done after fsync or with the commit's
// error (logged then may or may not have been called). Both run on the
// store's committer and must not block. Nothing is issued when issue
// returns an error.
func (is *issuer) issue(p int, key string, ctx protocol.Clock, sib protocol.Sibling, logged func(*protocol.Object), done func(error)) error {
	s := &is.stripes[maphash.String(is.seed, key)%uint64(len(is.stripes))]
	s.mu.Lock()
	defer s.mu.Unlock()
	base, inflight := s.pending[key]
	if !inflight {
		var err error
		if base, err = is.st.Get(p, key); err != nil {
			return err
		}
	}
	sib.Time = is.now().UnixNano()
	obj, err := version.Update(base, ctx, is.self, sib)
	if err != nil {
		return err
	}
	var sent atomic.Bool
	err = is.st.ApplyLogged(p, key, syncInto(obj), func() {
		sent.Store(true)
		logged(obj)
	}, func(_ *protocol.Object, err error) {
		// After a failed commit the object stays pending if it was sent:
		// its dot may be on other replicas, so it must never be issued
		// again (and the store takes no more writes anyway). One that was
		// never sent is forgotten.
		if err == nil || !sent.Load() {
			is.forget(s, key, obj)
		}
		done(err)
	})
	if err != nil {
		return err
	}
	s.pending[key] = obj
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
