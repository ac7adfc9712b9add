package protocol

// Heartbeat is a node's periodic gossip message (issue 17), published to
// every node: it says the sender is alive, carries a digest of the
// member records it holds and, when it has reason to think a peer lacks
// some (a digest it heard differs from its own), the records themselves.
// The sender signs it with its node key (Sig, over SigningBytes), and a
// receiver checks the signature against the key in the sender's member
// record, and that Time is later than the last heartbeat it accepted from
// the sender: a made-up, forged or replayed heartbeat is ignored. The
// records in it are signed by the cluster key, each on its own.
//
// On the wire it is the msgpack map
//
//	{v: V, f: From, t: Time, s: Secret, d: Digest, r: [record...],
//	 se: Serving, te: Target, re: Ready, sd: Settled, cm: Conflicts, g: Sig}
//
// with the fields after t left out when empty or zero.
type Heartbeat struct {
	V    int
	From string
	Time int64 // unix nanoseconds at the sender; increases from one heartbeat to the next
	// Secret is the fingerprint of the sender's store secret
	// (ContextKey.Fingerprint).
	Secret string
	// Digest is the hash of the member records the sender holds
	// (node/membership Set.Digest).
	Digest []byte
	// Records are member records: the sender's own, or all it holds.
	Records []MemberRecord
	// Serving, Target, Ready and Settled are membership epochs
	// (membership.Epoch) of the sender: of the ring it reads from, of the
	// ring the partitions are going to, of the target ring it has copied
	// every partition it gains for, and of the serving ring it writes to
	// alone (no previous ring left). Zero: none.
	Serving, Target, Ready, Settled uint64
	// Conflicts is the sender's conflict mode ("lww"), empty for the
	// default ("siblings"), so that a default node's heartbeats are what
	// they were before modes. Every node of a store must use the same;
	// a receiver reports a peer whose mode differs from its own.
	Conflicts string
	// Sig is the sender's node key's signature over SigningBytes.
	Sig []byte
}

// Limits of a heartbeat's fields.
const (
	maxSecretLen    = 64 // a fingerprint is 16 hex digits
	maxConflictsLen = 16 // a mode's name
	digestLen       = 32 // a SHA-256
	// minRecordSize is the smallest encoding of a member record the
	// decoder accepts: a map of its six required fields.
	minRecordSize = 1 + 6*2 + nodeKeyLen
)

// MaxMembers bounds the member set of one store.
const MaxMembers = 1024

// EncodeHeartbeat encodes h for the wire. It never fails; the error is
// kept for symmetry with the other encoders.
func EncodeHeartbeat(h *Heartbeat) ([]byte, error) { return encode(h, appendHeartbeat), nil }

// SigningBytes is what the signature of h covers: its encoding without
// the signature.
func (h *Heartbeat) SigningBytes() []byte {
	u := *h
	u.Sig = nil
	return encode(&u, appendHeartbeat)
}

// DecodeHeartbeat decodes and validates a heartbeat (not its signature
// nor its records' signatures: node/membership checks those).
func DecodeHeartbeat(b []byte) (*Heartbeat, error) {
	d := decoder{b: b, what: "heartbeat"}
	return decodeMessage(&d, d.heartbeat)
}

func appendHeartbeat(b []byte, h *Heartbeat) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(h.V))
	b = m.str(b, "f", h.From)
	b = m.int(b, "t", h.Time)
	if h.Secret != "" {
		b = m.str(b, "s", h.Secret)
	}
	if len(h.Digest) > 0 {
		b = m.bin(b, "d", h.Digest)
	}
	if len(h.Records) > 0 {
		b = appendArray(m.key(b, "r"), h.Records, appendMemberRecord)
	}
	for _, f := range [...]struct {
		k string
		v uint64
	}{{"se", h.Serving}, {"te", h.Target}, {"re", h.Ready}, {"sd", h.Settled}} {
		if f.v != 0 {
			b = m.uint(b, f.k, f.v)
		}
	}
	if h.Conflicts != "" {
		b = m.str(b, "cm", h.Conflicts)
	}
	if len(h.Sig) > 0 {
		b = m.bin(b, "g", h.Sig)
	}
	return m.end(b)
}

var (
	heartbeatKeys    = keys([]string{"v", "f", "t", "s", "d", "r", "se", "te", "re", "sd", "cm", "g"}, "v", "f", "t")
	memberRecordList = listSpec{name: "member records", minSize: minRecordSize, max: MaxMembers}
)

func (d *decoder) heartbeat() (*Heartbeat, error) {
	var h Heartbeat
	err := d.fields(heartbeatKeys, func(k string) (err error) {
		switch k {
		case "v":
			h.V, err = d.version()
		case "f":
			h.From, err = d.sender()
		case "t":
			h.Time, err = d.int()
		case "s":
			if h.Secret, err = d.str(); err == nil && len(h.Secret) > maxSecretLen {
				err = d.errorf("secret fingerprint of %d bytes", len(h.Secret))
			}
		case "d":
			if h.Digest, err = d.bytes(); err == nil && len(h.Digest) != digestLen {
				err = d.errorf("digest of %d bytes", len(h.Digest))
			}
		case "r":
			h.Records, err = decodeList(d, memberRecordList, func(r *MemberRecord) error {
				x, err := d.memberRecord()
				if err == nil {
					*r = *x
				}
				return err
			})
		case "se":
			h.Serving, err = d.uint()
		case "te":
			h.Target, err = d.uint()
		case "re":
			h.Ready, err = d.uint()
		case "sd":
			h.Settled, err = d.uint()
		case "cm":
			if h.Conflicts, err = d.str(); err == nil && len(h.Conflicts) > maxConflictsLen {
				err = d.errorf("conflict mode of %d bytes", len(h.Conflicts))
			}
		case "g":
			if h.Sig, err = d.bytes(); err == nil && len(h.Sig) != sigLen {
				err = d.errorf("signature of %d bytes", len(h.Sig))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &h, nil
}

func (d *decoder) member(m *string) (err error) {
	if *m, err = d.str(); err == nil && ValidateNodeID(*m) != nil {
		err = d.errorf("bad member id")
	}
	return err
}
