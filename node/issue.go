package node

import (
	"hash/maphash"
	"sync"

	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// issuer issues the dots of the writes this node coordinates, without
// waiting for the store's committer: the new object is computed from the
// newest object this node has issued for the key (kept in memory until
// its commit is durable) or else from the store, under a per-key stripe
// lock. So the write fans out to the other owners at once, in parallel
// with the local fsync, and a node still issues each of its dots for a
// key exactly once and in order (the dotted-version-vector invariant).
type issuer struct {
	st      *store.Store
	self    string
	seed    maphash.Seed
	stripes [64]stripe
}

type stripe struct {
	mu      sync.Mutex
	pending map[string]*protocol.Object // issued, local commit not yet known
}

func newIssuer(st *store.Store, self string) *issuer {
	is := &issuer{st: st, self: self, seed: maphash.MakeSeed()}
	for i := range is.stripes {
		is.stripes[i].pending = make(map[string]*protocol.Object)
	}
	return is
}

// issue applies the client write sib with context ctx to the node's newest
// object of key, queues the result for the local commit (done is called
// after fsync), and returns it. Nothing is issued when it returns an error.
func (is *issuer) issue(p int, key string, ctx protocol.Clock, sib protocol.Sibling, done func(*protocol.Object, error)) (*protocol.Object, error) {
	s := &is.stripes[maphash.String(is.seed, key)%uint64(len(is.stripes))]
	s.mu.Lock()
	defer s.mu.Unlock()
	base, inflight := s.pending[key]
	if !inflight {
		var err error
		if base, err = is.st.Get(p, key); err != nil {
			return nil, err
		}
	}
	sib.Time = timeNow()
	obj, err := version.Update(base, ctx, is.self, sib)
	if err != nil {
		return nil, err
	}
	err = is.st.Apply(p, key, syncInto(obj), func(stored *protocol.Object, err error) {
		if err == nil {
			is.committed(s, key, obj)
		}
		// On a failed commit the object stays pending: its dot may have
		// reached other replicas, so it must never be issued again.
		done(stored, err)
	})
	if err != nil {
		return nil, err
	}
	s.pending[key] = obj
	return obj, nil
}

// committed forgets obj once it is durable, unless a newer write of the
// key was issued since.
func (is *issuer) committed(s *stripe, key string, obj *protocol.Object) {
	s.mu.Lock()
	if s.pending[key] == obj {
		delete(s.pending, key)
	}
	s.mu.Unlock()
}
