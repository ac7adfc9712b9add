package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/protocol"
)

// NewSecret returns a new store secret: 32 random bytes as 64 hex digits.
func NewSecret() []byte {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return []byte(hex.EncodeToString(b[:]))
}

// LoadSecret reads the store secret in path (surrounding white space is
// not part of it). If the file does not exist and create is set, it
// writes a new one there first (owner-only) and reports it.
func LoadSecret(path string, create bool) (secret []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		b = NewSecret()
		if err := WriteSecret(path, b); err != nil {
			return nil, false, err
		}
		return b, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < protocol.MinSecretLen {
		return nil, false, fmt.Errorf("secret in %s is %d bytes, want at least %d (kvmesh secret makes one)", path, len(b), protocol.MinSecretLen)
	}
	return b, false, nil
}

// WriteSecret writes secret to path, owner-only, replacing the file
// atomically and syncing it: a crash leaves the old file or the whole
// secret, never a part of it that a node would take for the secret.
func WriteSecret(path string, secret []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := disk.WriteFile(disk.OS{}, path, append(bytes.Clone(secret), '\n'), 0o600, true); err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}
