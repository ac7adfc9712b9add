// Package protocol is kvmesh's wire contract: the subjects every node and
// client use, the header names, the error codes, the size limits, and the
// msgpack messages that travel between nodes and are stored in bbolt.
//
// It holds types, constants and pure encode/decode functions only; it
// starts no goroutines and imports nothing but the standard library and
// msgpack. Everything that decodes bytes from the network or the disk goes
// through a structural check first (see CheckMsgpack), because msgpack v5
// trusts declared lengths and a five-byte message could otherwise exhaust
// memory.
package protocol

// Version is the protocol version carried by every node-to-node message
// and every stored record. A receiver rejects versions it does not know.
const Version = 1
