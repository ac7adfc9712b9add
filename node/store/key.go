package store

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/kvmesh/kvmesh/protocol"
)

// Bucket names. They are part of the on-disk format.
var (
	bucketData = []byte("data")
	bucketMeta = []byte("meta")
)

// maxMetaName bounds the name of a metadata entry.
const maxMetaName = 255

// partitionPrefix returns the two big-endian bytes every record key of
// partition p starts with.
func partitionPrefix(p int) ([]byte, error) {
	if p < 0 || p > math.MaxUint16 {
		return nil, protocol.Errorf(protocol.ErrInvalidKey, "store: partition %d out of range 0..%d", p, math.MaxUint16)
	}
	return binary.BigEndian.AppendUint16(make([]byte, 0, 2), uint16(p)), nil
}

// dataKey returns the bbolt key of (p, key): the partition prefix followed
// by the key bytes. The key must satisfy protocol.ValidateKey, so the store
// never holds a record the protocol would refuse.
func dataKey(p int, key string) ([]byte, error) {
	prefix, err := partitionPrefix(p)
	if err != nil {
		return nil, err
	}
	if err := protocol.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	k := make([]byte, 2, 2+len(key))
	copy(k, prefix)
	return append(k, key...), nil
}

func validMetaName(name string) error {
	if name == "" || len(name) > maxMetaName {
		return protocol.Errorf(protocol.ErrInvalidKey, "store: meta name must be 1..%d bytes", maxMetaName)
	}
	return nil
}

// decodeRecord decodes a stored record of (p, key), whose bbolt key is
// bkey. A record that fails its checksum or does not decode is disk
// corruption or a bug, not bad input from a client, so the error is
// ErrInternal; it also wraps the decoder's error (ErrMalformed,
// ErrInvalidContext) for errors.Is.
func decodeRecord(p int, key string, bkey, v []byte) (*protocol.Object, error) {
	enc, ok := openRecord(bkey, v)
	if !ok {
		return nil, fmt.Errorf("%w: store: record %d/%q fails its checksum: %w", protocol.ErrInternal, p, key, ErrCorrupt)
	}
	o, err := protocol.DecodeObject(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: store: record %d/%q is corrupt: %w", protocol.ErrInternal, p, key, err)
	}
	return o, nil
}

// decodeRecordMeta is decodeRecord without the values
// (protocol.DecodeObjectMeta).
func decodeRecordMeta(p int, key string, bkey, v []byte) (*protocol.Object, error) {
	enc, ok := openRecord(bkey, v)
	if !ok {
		return nil, fmt.Errorf("%w: store: record %d/%q fails its checksum: %w", protocol.ErrInternal, p, key, ErrCorrupt)
	}
	o, err := protocol.DecodeObjectMeta(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: store: record %d/%q is corrupt: %w", protocol.ErrInternal, p, key, err)
	}
	return o, nil
}
