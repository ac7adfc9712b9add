package membership

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/protocol"
)

// Member records (protocol.MemberRecord) say who is in the ring. Each is
// signed with the cluster's key, so its validity depends on nothing but
// itself: a Set merges records in any order, any number of times, and
// every node that has seen the same records holds the same set (the merge
// is commutative, associative and idempotent), without a leader. The
// rings are pure functions of the set (Set.Serving and Set.Target, plan.go).
//
// Every member holds the cluster key's seed; a new node receives it when
// it is admitted. A member that is removed keeps it, so removal is not a
// boundary against that node itself (rotate the cluster key for that),
// the same trust NATS gives a route password.

// Errors of Verify and Set.Apply, matched with errors.Is.
var (
	// ErrForged: the signature does not verify under the cluster key.
	ErrForged = errors.New("membership: record not signed by the cluster key")
	// ErrStale: the set holds this record or a later one of its member.
	ErrStale = errors.New("membership: record is stale")
	// ErrInvalid: the record's fields are not a member's.
	ErrInvalid = errors.New("membership: invalid record")
)

// Sign returns r signed with the cluster key pair kp.
func Sign(r protocol.MemberRecord, kp nkeys.KeyPair) (protocol.MemberRecord, error) {
	sig, err := kp.Sign(r.SigningBytes())
	if err != nil {
		return r, err
	}
	r.Sig = sig
	return r, nil
}

// Verify checks that r is well formed and signed with the cluster key
// whose public key is cluster.
func Verify(r *protocol.MemberRecord, cluster string) error {
	if protocol.ValidateNodeID(r.ID) != nil || !nkeys.IsValidPublicServerKey(r.Key) || r.Status < protocol.MemberJoining || r.Status > protocol.MemberLeft {
		return fmt.Errorf("%w: %q", ErrInvalid, protocol.Clip(r.ID, 64))
	}
	kp, err := nkeys.FromPublicKey(cluster)
	if err != nil {
		return fmt.Errorf("membership: cluster key: %w", err)
	}
	if len(r.Sig) == 0 || kp.Verify(r.SigningBytes(), r.Sig) != nil {
		return fmt.Errorf("%w: %s", ErrForged, r.ID)
	}
	return nil
}

// Supersedes reports whether record b replaces a, both of one member: a
// later incarnation; then, in one incarnation, left over any other
// status (leaving is final); then a later version; then, for records
// that agree on all of these (which a correct cluster never signs), the
// greater encoding, so that every node picks the same one.
func Supersedes(b, a *protocol.MemberRecord) bool {
	if c := cmp.Compare(b.Incarnation, a.Incarnation); c != 0 {
		return c > 0
	}
	if bl, al := b.Status == protocol.MemberLeft, a.Status == protocol.MemberLeft; bl != al {
		return bl
	}
	if c := cmp.Compare(b.Version, a.Version); c != 0 {
		return c > 0
	}
	return bytes.Compare(b.SigningBytes(), a.SigningBytes()) > 0
}

// Set is the cluster's member records as one node knows them, by id. The
// zero value is an empty set. A Set is a value: Apply and Merge return a
// new one and never change their receiver, so a node can publish it
// behind an atomic pointer.
type Set struct {
	recs map[string]protocol.MemberRecord
}

// Apply returns the set with r in it, if r verifies under the cluster
// key and supersedes the record the set holds for r's member; otherwise
// the set itself and the error (ErrForged, ErrInvalid, ErrStale).
func (s Set) Apply(r protocol.MemberRecord, cluster string) (Set, error) {
	if err := Verify(&r, cluster); err != nil {
		return s, err
	}
	if old, ok := s.recs[r.ID]; ok && !Supersedes(&r, &old) {
		return s, fmt.Errorf("%w: %s incarnation %d version %d", ErrStale, r.ID, r.Incarnation, r.Version)
	}
	recs := maps.Clone(s.recs)
	if recs == nil {
		recs = map[string]protocol.MemberRecord{}
	}
	recs[r.ID] = r
	return Set{recs: recs}, nil
}

// Merge returns the set with every record of o that verifies and
// supersedes applied, and how many did.
func (s Set) Merge(o Set, cluster string) (Set, int) {
	n := 0
	for _, r := range o.Records() {
		var err error
		if s, err = s.Apply(r, cluster); err == nil {
			n++
		}
	}
	return s, n
}

// Records returns the set's records, sorted by id.
func (s Set) Records() []protocol.MemberRecord {
	out := slices.Collect(maps.Values(s.recs))
	slices.SortFunc(out, func(a, b protocol.MemberRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Get returns member id's record.
func (s Set) Get(id string) (protocol.MemberRecord, bool) {
	r, ok := s.recs[id]
	return r, ok
}

// Digest returns a hash of the set's records, signatures included: two
// sets are equal exactly when their digests are (up to SHA-256
// collisions). Nodes compare digests in heartbeats and send their records
// only when they differ.
func (s Set) Digest() []byte {
	h := sha256.New()
	var n [4]byte
	for _, r := range s.Records() {
		for _, b := range [][]byte{r.SigningBytes(), r.Sig} {
			binary.BigEndian.PutUint32(n[:], uint32(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	return h.Sum(nil)
}

// Len returns the number of records in the set.
func (s Set) Len() int { return len(s.recs) }

// Equal reports whether s and o hold the same records.
func (s Set) Equal(o Set) bool {
	if len(s.recs) != len(o.recs) {
		return false
	}
	for id, r := range s.recs {
		q, ok := o.recs[id]
		if !ok || !bytes.Equal(r.SigningBytes(), q.SigningBytes()) || !bytes.Equal(r.Sig, q.Sig) {
			return false
		}
	}
	return true
}
