package protocol

// MaxMembers bounds the member set of one store.
const MaxMembers = 1024

// maxSecretLen bounds Announce.Secret, a fingerprint of 16 hex digits.
const maxSecretLen = 64

// Announce is a node's periodic membership announcement: who it is and
// which members it knows. It doubles as a heartbeat. (Signing comes with
// the security work; until then only cluster members can publish on the
// gossip subjects.) On the wire it is the msgpack map
// {v: V, f: From, m: Members, t: Time, s: Secret}, s left out when empty.
type Announce struct {
	V       int
	From    string
	Members []string
	Time    int64 // unix nanoseconds at the sender
	// Secret is the fingerprint of the sender's store secret
	// (ContextKey.Fingerprint): nodes with different secrets refuse each
	// other's causal contexts, and say so.
	Secret string
}

// EncodeAnnounce encodes a for the wire. It never fails; the error is
// kept for symmetry with the other encoders.
func EncodeAnnounce(a *Announce) ([]byte, error) { return encode(a, appendAnnounce), nil }

// DecodeAnnounce decodes and validates an announcement.
func DecodeAnnounce(b []byte) (*Announce, error) {
	d := decoder{b: b, what: "announce"}
	return decodeMessage(&d, d.announce)
}

func appendAnnounce(b []byte, a *Announce) []byte {
	b, m := beginMap(b)
	b = m.int(b, "v", int64(a.V))
	b = m.str(b, "f", a.From)
	b = appendList(m.key(b, "m"), a.Members, appendStrElem)
	b = m.int(b, "t", a.Time)
	if a.Secret != "" {
		b = m.str(b, "s", a.Secret)
	}
	return m.end(b)
}

var (
	announceKeys = keys([]string{"v", "f", "m", "t", "s"}, "v", "f")
	memberList   = listSpec{name: "members", minSize: 1, max: MaxMembers}
)

func (d *decoder) announce() (*Announce, error) {
	var a Announce
	err := d.fields(announceKeys, func(k string) (err error) {
		switch k {
		case "v":
			a.V, err = d.version()
		case "f":
			a.From, err = d.sender()
		case "m":
			a.Members, err = decodeList(d, memberList, d.member)
		case "t":
			a.Time, err = d.int()
		case "s":
			if a.Secret, err = d.str(); err == nil && len(a.Secret) > maxSecretLen {
				err = d.errorf("secret fingerprint of %d bytes", len(a.Secret))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func (d *decoder) member(m *string) (err error) {
	if *m, err = d.str(); err == nil && ValidateNodeID(*m) != nil {
		err = d.errorf("bad member id")
	}
	return err
}
