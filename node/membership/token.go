package membership

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/protocol"
)

// Join tokens (protocol.JoinToken) admit a new node: whoever holds one
// may ask a member for the store secret until it expires, any number of
// times. Only the cluster key signs them, so only a member mints them.

// Errors of VerifyToken, matched with errors.Is.
var (
	// ErrTokenOtherCluster: the token names another cluster's key.
	ErrTokenOtherCluster = errors.New("membership: join token of another cluster")
	// ErrTokenForged: its signature does not verify under the key it names.
	ErrTokenForged = errors.New("membership: join token not signed by the cluster key")
	// ErrTokenExpired: it expired.
	ErrTokenExpired = errors.New("membership: join token expired")
)

// MintToken returns a join token signed with the cluster key pair kp,
// for a store with subject prefix prefix whose members listen on urls,
// valid until expires. nonce is TokenNonceLen random bytes, from the
// caller. It checks what it is given as ParseToken will.
func MintToken(kp nkeys.KeyPair, prefix string, urls []string, expires time.Time, nonce []byte) (*protocol.SignedToken, error) {
	cluster, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("membership: join token: %w", err)
	}
	if len(urls) > protocol.MaxTokenURLs {
		urls = urls[:protocol.MaxTokenURLs]
	}
	body, _ := protocol.EncodeJoinToken(&protocol.JoinToken{V: protocol.Version, Cluster: cluster, Prefix: prefix, URLs: urls,
		Expires: expires.UnixNano(), Nonce: nonce})
	sig, err := kp.Sign(body)
	if err != nil {
		return nil, fmt.Errorf("membership: join token: %w", err)
	}
	st, err := protocol.ParseToken((&protocol.SignedToken{Body: body, Sig: sig}).String())
	if err != nil {
		return nil, fmt.Errorf("membership: join token: %w", err)
	}
	return st, nil
}

// VerifyToken checks that st names the cluster whose public key is
// cluster, is signed by that key, and has not expired at now. The joining
// node checks its token with its own cluster key before it asks
// (VerifyToken(st, st.Token.Cluster, time.Time{}): a zero now skips the
// expiry, which the members' clocks judge).
func VerifyToken(st *protocol.SignedToken, cluster string, now time.Time) error {
	if st.Token.Cluster != cluster {
		return fmt.Errorf("%w (%s, this cluster is %s)", ErrTokenOtherCluster, st.Token.Cluster, cluster)
	}
	kp, err := nkeys.FromPublicKey(cluster)
	if err != nil || !nkeys.IsValidPublicClusterKey(cluster) {
		return fmt.Errorf("%w: bad cluster key %s", ErrTokenForged, protocol.Clip(cluster, 64))
	}
	if kp.Verify(st.Body, st.Sig) != nil {
		return ErrTokenForged
	}
	if !now.IsZero() && now.UnixNano() >= st.Token.Expires {
		return fmt.Errorf("%w at %s", ErrTokenExpired, time.Unix(0, st.Token.Expires).UTC().Format(time.RFC3339))
	}
	return nil
}
