package protocol

import (
	"strconv"
	"time"
)

// Header names of the client API. nats.Header is case-sensitive: use these
// constants, never spell them by hand.
const (
	HdrR        = "Kvmesh-R"        // read quorum: one, quorum, all or 1..N
	HdrW        = "Kvmesh-W"        // write quorum: one, quorum, all or 1..N
	HdrPR       = "Kvmesh-PR"       // of the read quorum, replies that must come from owners (not fallbacks)
	HdrPW       = "Kvmesh-PW"       // of the write quorum, acknowledgements that must come from owners
	HdrContext  = "Kvmesh-Context"  // opaque causal context (base64)
	HdrSiblings = "Kvmesh-Siblings" // number of sibling values in a get reply
	HdrKey      = "Kvmesh-Key"      // the key, for keys that are not subject-safe
	HdrNode     = "Kvmesh-Node"     // id of the node that coordinated the request
	HdrError    = "Kvmesh-Error"    // stable error name (see Error.Name)
	// HdrTTL is a put's time to live (ParseTTL): a Go duration ("30s",
	// "1h30m") or whole seconds ("30"). The key reads as not found from
	// the coordinator's time of the write plus the TTL on.
	HdrTTL = "Kvmesh-TTL"
	// HdrExpires, in a get reply, is when the key will read as not found
	// unless it is written again: every value it holds has a TTL, and
	// this is the latest expiry of them, as RFC 3339 with nanoseconds in
	// UTC (time.RFC3339Nano). Absent when some value never expires.
	HdrExpires = "Kvmesh-Expires"
	// HdrPrefix is a listing's key prefix on "<prefix>.kv.keys", for
	// prefixes that are not subject-safe (e.g. "user." or "a b").
	HdrPrefix = "Kvmesh-Prefix"
	// HdrLimit is a listing's page size: 1..MaxKeysLimit keys (default
	// DefaultKeysLimit).
	HdrLimit = "Kvmesh-Limit"
	// HdrCursor, on a listing request, is where the page starts: the
	// "next" of the page before, as it came; on a reply, the same as the
	// body's "next" (absent on the last page).
	HdrCursor = "Kvmesh-Cursor"
	// HdrDetail, "true" on a listing request, has each key come with its
	// live sibling count, causal context and expiry (KeyEntry).
	HdrDetail = "Kvmesh-Detail"
	// HdrIf makes a put or delete conditional (ParseIf): "absent" writes
	// only if the key has no live value, "version" only if nothing was
	// written since the request's Kvmesh-Context. A write whose
	// condition does not hold is refused with 409 and the key's current
	// context in Kvmesh-Context.
	HdrIf = "Kvmesh-If"

	// Headers of a change event (Subjects.Events).
	//
	// HdrOp is what happened: EventPut, EventDelete or EventExpire.
	HdrOp = "Kvmesh-Op"
	// HdrTime is when: the coordinator's time of the write, or the
	// expiry of an expired value (RFC 3339 with nanoseconds, UTC).
	HdrTime = "Kvmesh-Time"
	// HdrVersion is a number that orders one key's events along
	// causality: an event's is greater than that of every event whose
	// write its write saw (superseded). Events of concurrent writes
	// (siblings) are in no order.
	HdrVersion = "Kvmesh-Version"

	// The NATS micro service error headers.
	HdrServiceError     = "Nats-Service-Error"
	HdrServiceErrorCode = "Nats-Service-Error-Code"

	// HdrStatus is set by the NATS server on a no-responders reply (503).
	HdrStatus = "Status"
)

// Kvmesh-If values (ParseIf).
const (
	IfAbsent  = "absent"
	IfVersion = "version"
)

// Condition is a conditional write's test (Kvmesh-If): CondNone for a
// plain write.
type Condition uint8

const (
	CondNone    Condition = iota
	CondAbsent            // the key has no live value
	CondVersion           // nothing was written since the request's context
)

// ParseIf reads a Kvmesh-If header value: "" (none), "absent" or
// "version". A delete takes only "version": a delete of an absent key
// changes nothing.
func ParseIf(s string, del bool) (Condition, error) {
	switch {
	case s == "":
		return CondNone, nil
	case s == IfAbsent && !del:
		return CondAbsent, nil
	case s == IfVersion:
		return CondVersion, nil
	}
	want := "absent or version"
	if del {
		want = "version"
	}
	return 0, Errorf(ErrInvalidOption, "%s %q: want %s", HdrIf, Clip(s, 32), want)
}

// Change event operations (the Kvmesh-Op header of an event).
const (
	EventPut    = "put"
	EventDelete = "delete"
	EventExpire = "expire"
)

// Quorum values a client may give for R or W.
const (
	QuorumOne      = "one"
	QuorumMajority = "quorum"
	QuorumAll      = "all"
)

// ParsePrimary turns a PR or PW header value into how many replies or
// acknowledgements must come from the key's owners rather than
// fallbacks, for a store with replication factor n: the syntax of
// ParseQuorum, except that the empty string and "0" mean no requirement
// (0).
func ParsePrimary(s string, n int) (int, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	return ParseQuorum(s, n)
}

// ParseQuorum turns an R or W header value into a replica count for a
// store with replication factor n. The empty string means a majority.
func ParseQuorum(s string, n int) (int, error) {
	switch s {
	case "", QuorumMajority:
		return n/2 + 1, nil
	case QuorumOne:
		return 1, nil
	case QuorumAll:
		return n, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > n {
		return 0, Errorf(ErrInvalidOption, "quorum %q: want one, quorum, all or 1..%d", Clip(s, 32), n)
	}
	return v, nil
}

// MaxTTL bounds a put's time to live: ten years (of 365 days).
const MaxTTL = 10 * 365 * 24 * time.Hour

// ParseTTL turns a Kvmesh-TTL header value into a time to live: a Go
// duration ("30s", "1h30m", "1.5h") or a whole number of seconds ("30").
// It must be > 0 and at most MaxTTL. The empty string means no TTL (0).
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > 0 && n <= int64(MaxTTL/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if v, err := time.ParseDuration(s); err == nil {
		d = v
	}
	if d <= 0 || d > MaxTTL {
		return 0, Errorf(ErrInvalidOption, "ttl %q: want a duration (30s, 1h) or whole seconds, > 0 and at most %v", Clip(s, 32), MaxTTL)
	}
	return d, nil
}
