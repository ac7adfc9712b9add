package membership

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/protocol"
)

// ClusterKey derives the cluster's key pair from the store secret (the
// one every node of a store holds, Config.Secret): the root of trust of
// membership. It signs member records (Sign), issues the certificates
// that open routes, and signs join tokens. Deriving it, instead of
// keeping a second shared file, means a store has one secret to guard
// and hand to a new node (sealed, at admission), and the bootstrap nodes
// of a store agree on it without a round of messages.
//
// The key is an nkey of the cluster kind ("C..."); the same secret always
// gives the same key.
func ClusterKey(secret []byte) (nkeys.KeyPair, error) {
	if len(secret) < protocol.MinSecretLen {
		return nil, fmt.Errorf("membership: cluster key: secret of %d bytes, want at least %d", len(secret), protocol.MinSecretLen)
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, "kvmesh cluster key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("membership: cluster key: %w", err)
	}
	return nkeys.FromRawSeed(nkeys.PrefixByteCluster, seed)
}
