package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"

	"github.com/nats-io/nkeys"

	"github.com/kvmesh/kvmesh/node/disk"
)

// A node's key pair is its identity among the members (issue 17): an
// ed25519 NATS nkey of the server kind, whose public key ("N...") its
// membership record carries and whose seed signs what it says. The seed
// lives in a file only its owner may read (Config.KeyFile, by default
// DataDir/node.nk), created on the node's first start, or given by the
// operator (kvmesh keygen writes one).

// keyFileName is the key file's name in the data dir.
const keyFileName = "node.nk"

// NewKeySeed returns the seed of a new node key pair (what a key file
// holds) and its public key.
func NewKeySeed() (seed []byte, public string, err error) {
	kp, err := nkeys.CreateServer()
	if err != nil {
		return nil, "", err
	}
	if seed, err = kp.Seed(); err != nil {
		return nil, "", err
	}
	public, err = kp.PublicKey()
	return seed, public, err
}

// loadKey reads the node key pair in path; if there is none and create
// is set, it makes one and writes its seed there first (owner-only,
// synced). It refuses a file others may read, or one that is not a node
// seed.
func loadKey(fsys disk.FS, path string, create bool) (nkeys.KeyPair, bool, error) {
	b, err := fsys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		seed, _, err := NewKeySeed()
		if err != nil {
			return nil, false, err
		}
		if err := disk.WriteFile(fsys, path, append(seed, '\n'), 0o600, true); err != nil {
			return nil, false, fmt.Errorf("write node key %s: %w", path, err)
		}
		kp, err := nkeys.FromSeed(seed)
		return kp, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("node key: %w", err)
	}
	if fi, err := fsys.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("node key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	seed := bytes.TrimSpace(b)
	if prefix, _, err := nkeys.DecodeSeed(seed); err != nil || prefix != nkeys.PrefixByteServer {
		return nil, false, fmt.Errorf("node key %s holds no node seed (kvmesh keygen writes one)", path)
	}
	kp, err := nkeys.FromSeed(seed)
	return kp, false, err
}

// PublicKey returns the node's public key ("N..."). Valid after Start.
func (n *Node) PublicKey() string { return n.publicKey }
