package protocol

// Limits of the data model. They are part of the wire contract: a node
// rejects anything beyond them with a clear error and writes nothing.
const (
	// MaxKeyLen is the longest key in bytes (UTF-8).
	MaxKeyLen = 1024
	// MaxNodeIDLen is the longest node id in bytes.
	MaxNodeIDLen = 64
	// MaxClockEntries bounds the entries of a causal clock. A clock has
	// one entry per node that ever coordinated a write of the key.
	MaxClockEntries = 256
	// MaxSiblings bounds the concurrent values one key may hold: a write
	// whose coordinator would leave more is refused (Riak refuses past 100
	// too).
	MaxSiblings = 100
	// MaxStoredSiblings bounds the siblings of a stored or transferred
	// object. It is larger than MaxSiblings because each coordinator
	// enforces MaxSiblings on its own view, so merging replicas can
	// legitimately hold more; a merge never drops a sibling.
	MaxStoredSiblings = 16 * MaxSiblings
	// MaxContextLen bounds the Kvmesh-Context header (base64 text).
	MaxContextLen = 32 << 10
	// MaxDepth bounds the nesting of any msgpack message we decode.
	MaxDepth = 8
	// MaxCounter bounds a clock counter so arithmetic never overflows.
	MaxCounter = 1 << 62
	// DefaultMaxPayload is NATS's default max_payload (1 MiB). The real
	// limit is the server's, read from the connection at run time.
	DefaultMaxPayload = 1 << 20
	// HeaderAllowance is the room reserved for headers and envelope in a
	// message, so that a value of MaxValueLen(maxPayload) bytes still fits
	// in a replica message with its clock and headers.
	HeaderAllowance = 32 << 10
)

// MaxValueLen is the largest value a store with the given NATS max
// payload accepts: the payload limit minus room for headers, the key and
// the causal clock.
func MaxValueLen(maxPayload int64) int {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	n := maxPayload - HeaderAllowance - MaxKeyLen
	if n < 1 {
		n = 1
	}
	return int(n)
}
