package membership

import (
	"errors"
	"testing"
	"time"

	"github.com/kvmesh/kvmesh/protocol"
)

// TestVerifyToken: a minted token verifies under its cluster's key until
// it expires; a token of another cluster, one whose body was changed,
// and one that names this cluster but was signed by another key do not.
func TestVerifyToken(t *testing.T) {
	kp, _ := ClusterKey([]byte("0123456789abcdef0123456789abcdef"))
	other, _ := ClusterKey([]byte("another store's secret, 32 bytes"))
	cluster, _ := kp.PublicKey()
	otherPub, _ := other.PublicKey()
	now := time.Unix(1_700_000_000, 0)
	nonce := make([]byte, protocol.TokenNonceLen)
	urls := []string{"nats://10.0.0.1:4222"}

	st, err := MintToken(kp, "kvmesh", urls, now.Add(time.Hour), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyToken(st, cluster, now); err != nil {
		t.Fatal(err)
	}
	if err := VerifyToken(st, cluster, time.Time{}); err != nil {
		t.Fatalf("zero now: %v", err)
	}

	// Signed by the cluster key named in the token, but not this one.
	foreign, _ := MintToken(other, "kvmesh", urls, now.Add(time.Hour), nonce)
	// This cluster's key named, another key's signature.
	forged := *foreign
	body := *foreign.Token
	body.Cluster = cluster
	forged.Body, _ = protocol.EncodeJoinToken(&body)
	forged.Sig, _ = other.Sign(forged.Body)
	forged.Token = &body
	// A signed token whose body was changed afterwards: a later expiry.
	tampered := *st
	later := *st.Token
	later.Expires = now.Add(1000 * time.Hour).UnixNano()
	tampered.Body, _ = protocol.EncodeJoinToken(&later)
	tampered.Token = &later

	for _, c := range []struct {
		name string
		st   *protocol.SignedToken
		at   time.Time
		want error
	}{
		{"another cluster's token", foreign, now, ErrTokenOtherCluster},
		{"signed by another key", &forged, now, ErrTokenForged},
		{"changed after signing", &tampered, now, ErrTokenForged},
		{"at its expiry", st, now.Add(time.Hour), ErrTokenExpired},
		{"after its expiry", st, now.Add(2 * time.Hour), ErrTokenExpired},
	} {
		if err := VerifyToken(c.st, cluster, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if err := VerifyToken(foreign, otherPub, now); err != nil {
		t.Errorf("the other cluster's token under its own key: %v", err)
	}
	// A token survives its text form.
	parsed, err := protocol.ParseToken(st.String())
	if err != nil || VerifyToken(parsed, cluster, now) != nil {
		t.Fatalf("parsed token: %v", err)
	}
}
