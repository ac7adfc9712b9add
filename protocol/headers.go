package protocol

import "strconv"

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

	// The NATS micro service error headers.
	HdrServiceError     = "Nats-Service-Error"
	HdrServiceErrorCode = "Nats-Service-Error-Code"

	// HdrStatus is set by the NATS server on a no-responders reply (503).
	HdrStatus = "Status"
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
