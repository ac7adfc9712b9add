package protocol

// MaxMembers bounds the member set of one store.
const MaxMembers = 1024

// maxSecretLen bounds Announce.Secret, a fingerprint of 16 hex digits.
const maxSecretLen = 64

// Announce is a node's periodic membership announcement: who it is and
// which members it knows. It doubles as a heartbeat. (Signing comes with
// the security work; until then only cluster members can publish on the
// gossip subjects.)
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

// EncodeAnnounce encodes a for the wire: the map
// {v: V, f: From, m: Members, t: Time, s: Secret}, s left out when empty.
// It never fails; the error is kept for symmetry with the other encoders.
func EncodeAnnounce(a *Announce) ([]byte, error) {
	return encodeWith(func(b []byte) []byte { return appendAnnounce(b, a) }), nil
}

// DecodeAnnounce decodes and validates an announcement.
func DecodeAnnounce(b []byte) (*Announce, error) {
	return decodeMessage(b, "announce", (*decoder).announce)
}

func (d *decoder) announce() (*Announce, error) {
	var a Announce
	err := d.fields(announceKeys, func(k string) (err error) {
		switch k {
		case "v":
			a.V, err = d.version()
		case "f":
			a.From, err = d.sender()
		case "m":
			a.Members, err = d.members()
		case "t":
			a.Time, err = d.int()
		case "s":
			a.Secret, err = d.str()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if a.V != Version {
		return nil, Errorf(ErrMalformed, "announce: protocol version %d, want %d", a.V, Version)
	}
	if a.From == "" {
		return nil, Errorf(ErrMalformed, "announce: bad sender id")
	}
	if len(a.Secret) > maxSecretLen {
		return nil, Errorf(ErrMalformed, "announce: secret fingerprint of %d bytes", len(a.Secret))
	}
	return &a, nil
}

func appendAnnounce(b []byte, a *Announce) []byte {
	n := 4
	if a.Secret != "" {
		n++
	}
	b = append(b, 0x80|byte(n), 0xa1, 'v')
	b = appendInt(b, int64(a.V))
	b = append(b, 0xa1, 'f')
	b = appendStr(b, a.From)
	b = append(b, 0xa1, 'm')
	b = appendStrs(b, a.Members)
	b = append(b, 0xa1, 't')
	b = appendInt(b, a.Time)
	if a.Secret != "" {
		b = append(b, 0xa1, 's')
		b = appendStr(b, a.Secret)
	}
	return b
}

var announceKeys = []string{"v", "f", "m", "t", "s"}

// members reads the member ids of an announcement.
func (d *decoder) members() ([]string, error) {
	return decodeList(d, 1, func(n int) error {
		if n > MaxMembers {
			return Errorf(ErrMalformed, "announce: %d members, limit %d", n, MaxMembers)
		}
		return nil
	}, func(m *string) (err error) {
		if *m, err = d.str(); err == nil && ValidateNodeID(*m) != nil {
			err = Errorf(ErrMalformed, "announce: bad member id")
		}
		return err
	})
}
