package protocol

// Member records: what the cluster knows of one member (issue 17). A
// record is signed with the cluster's key (node/membership), over its
// encoding without the signature (MemberRecord.SigningBytes), and travels
// in gossip. On the wire it is the msgpack map
//
//	{v: V, i: ID, k: Key, c: Client, r: Route, d: DC, s: Status,
//	 n: Incarnation, e: Version, g: Sig}
//
// with c, r, d and g left out when empty.

// MemberStatus is where a member stands in the ring's life cycle.
type MemberStatus uint8

const (
	// MemberJoining: admitted; partitions stream to it.
	MemberJoining MemberStatus = iota + 1
	// MemberUp: a full member.
	MemberUp
	// MemberLeaving: handing its partitions off.
	MemberLeaving
	// MemberLeft: gone for good (left or removed), for this incarnation.
	MemberLeft
)

func (s MemberStatus) String() string {
	switch s {
	case MemberJoining:
		return "joining"
	case MemberUp:
		return "up"
	case MemberLeaving:
		return "leaving"
	case MemberLeft:
		return "left"
	}
	return "unknown"
}

// Limits of a member record's fields.
const (
	maxURLLen  = 256
	maxDCLen   = 64
	sigLen     = 64 // an ed25519 signature
	nodeKeyLen = 56 // an nkey public key: 'N' and 55 base32 digits
)

// MemberRecord is one member's record.
type MemberRecord struct {
	V           int
	ID          string       // the node id
	Key         string       // its public key, an nkey "N..."
	Client      string       // its client URL (nats://host:port), if it has one
	Route       string       // its route URL (nats-route://host:port)
	DC          string       // its data center, "" for the default one
	Status      MemberStatus // joining, up, leaving or left
	Incarnation uint64       // one per admission of the id (a new key is a new incarnation)
	Version     uint64       // one per change within an incarnation
	Sig         []byte       // the cluster key's signature over SigningBytes
}

// EncodeMemberRecord encodes r for the wire. It never fails; the error is
// kept for symmetry with the other encoders.
func EncodeMemberRecord(r *MemberRecord) ([]byte, error) { return encode(r, appendMemberRecord), nil }

// SigningBytes is what the signature of r covers: r's encoding without
// its signature.
func (r *MemberRecord) SigningBytes() []byte {
	u := *r
	u.Sig = nil
	return encode(&u, appendMemberRecord)
}

// DecodeMemberRecord decodes and validates a member record (not its
// signature: node/membership verifies that).
func DecodeMemberRecord(b []byte) (*MemberRecord, error) {
	d := decoder{b: b, what: "member record"}
	return decodeMessage(&d, d.memberRecord)
}

func appendMemberRecord(b []byte, r *MemberRecord) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(r.V))
	b = m.str(b, "i", r.ID)
	b = m.str(b, "k", r.Key)
	for _, f := range [...]struct{ k, v string }{{"c", r.Client}, {"r", r.Route}, {"d", r.DC}} {
		if f.v != "" {
			b = m.str(b, f.k, f.v)
		}
	}
	b = m.uint(b, "s", uint64(r.Status))
	b = m.uint(b, "n", r.Incarnation)
	b = m.uint(b, "e", r.Version)
	if len(r.Sig) > 0 {
		b = m.bin(b, "g", r.Sig)
	}
	return m.end(b)
}

var memberRecordKeys = keys([]string{"v", "i", "k", "c", "r", "d", "s", "n", "e", "g"}, "v", "i", "k", "s", "n", "e")

func (d *decoder) memberRecord() (*MemberRecord, error) {
	var r MemberRecord
	err := d.fields(memberRecordKeys, func(k string) (err error) {
		switch k {
		case "v":
			r.V, err = d.version()
		case "i":
			err = d.member(&r.ID)
		case "k":
			if r.Key, err = d.str(); err == nil && !validNodeKey(r.Key) {
				err = d.errorf("bad node key")
			}
		case "c", "r":
			var u string
			if u, err = d.str(); err == nil && len(u) > maxURLLen {
				err = d.errorf("URL of %d bytes", len(u))
			}
			if k == "c" {
				r.Client = u
			} else {
				r.Route = u
			}
		case "d":
			if r.DC, err = d.str(); err == nil && (len(r.DC) > maxDCLen || ValidateNodeID(r.DC) != nil) {
				err = d.errorf("bad data center name")
			}
		case "s":
			var s uint64
			if s, err = d.uint(); err == nil && (s < uint64(MemberJoining) || s > uint64(MemberLeft)) {
				err = d.errorf("status %d", s)
			}
			r.Status = MemberStatus(s)
		case "n":
			r.Incarnation, err = d.uint()
		case "e":
			r.Version, err = d.uint()
		case "g":
			if r.Sig, err = d.bytes(); err == nil && len(r.Sig) != sigLen {
				err = d.errorf("signature of %d bytes", len(r.Sig))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// validNodeKey checks the form of an nkey public key of a node ("N" and
// 55 base32 digits); node/membership checks that it is a key.
func validNodeKey(k string) bool {
	if len(k) != nodeKeyLen || k[0] != 'N' {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
