// Package protocol is kvmesh's wire contract: the subjects every node and
// client use, the header names, the error codes, the size limits, and the
// msgpack messages that travel between nodes and are stored in bbolt.
//
// It holds types, constants and pure encode/decode functions only; it
// starts no goroutines and imports nothing but the standard library. Its
// msgpack codec is written by hand (msgpack.go): every decoder of bytes
// from the network or the disk bounds each declared length by the bytes
// that remain before it allocates, because a five-byte message that claims
// 2^31 items must be an error, not an out-of-memory crash.
package protocol

// Version is the protocol version carried by every node-to-node message
// and every stored record. A receiver rejects versions it does not know.
const Version = 1
