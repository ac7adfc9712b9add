package protocol

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultPrefix is the subject prefix of a store unless configured.
const DefaultPrefix = "kvmesh"

// Client API operations; each is a subject token after "<prefix>.kv.".
const (
	OpGet = "get"
	OpPut = "put"
	OpDel = "del"
	// OpKeys lists keys: "<prefix>.kv.keys.<key prefix>", or
	// "<prefix>.kv.keys" with the key prefix in the Kvmesh-Prefix
	// header (none: every key). See keys.go.
	OpKeys = "keys"
)

// QueueGroup is the queue group every node serves the client API in, so
// NATS hands each request to one node of the cluster.
const QueueGroup = "kvmesh"

// Subjects builds every subject of one store. The zero value is not
// usable; use NewSubjects.
type Subjects struct {
	Prefix string
}

// NewSubjects returns the subjects for prefix, or the default prefix when
// prefix is empty. The prefix must be a valid literal subject.
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !literalSubject(prefix) {
		return Subjects{}, Errorf(ErrInvalidOption, "subject prefix %q is not a literal subject", Clip(prefix, 64))
	}
	return Subjects{Prefix: prefix}, nil
}

// KV is the subject of client operation op on key: "<prefix>.kv.<op>.<key>".
// The key must be subject-safe (see SubjectSafeKey); other keys use
// KVBase with the key in the Kvmesh-Key header.
func (s Subjects) KV(op, key string) string { return s.Prefix + ".kv." + op + "." + key }

// KVBase is the subject of op with the key in the Kvmesh-Key header.
func (s Subjects) KVBase(op string) string { return s.Prefix + ".kv." + op }

// KVWildcard is the subject a node subscribes to for op.
func (s Subjects) KVWildcard(op string) string { return s.Prefix + ".kv." + op + ".>" }

// KVNode is the subject of client operation op on key addressed to node
// id itself: "<prefix>.kv.node.<id>.<op>.<key>". Every node serves it
// besides the queue group, so a client that knows which node it is
// connected to (the server name) skips the queue group's random pick,
// which mostly lands on another server one route away.
func (s Subjects) KVNode(id, op, key string) string {
	return s.Prefix + ".kv.node." + id + "." + op + "." + key
}

// KVNodeWildcard is the subject node id subscribes to for op addressed to
// it.
func (s Subjects) KVNodeWildcard(id, op string) string {
	return s.Prefix + ".kv.node." + id + "." + op + ".>"
}

// KVLocal is where node id's server delivers what its own clients
// publish on KVWildcard(op) and KVBase(op): "<prefix>.kv.local.<id>.<op>"
// and "<prefix>.kv.local.<id>.<op>.<key>" (a subject mapping, so that the
// node a client is connected to serves its requests). Clients never
// publish on it; the key parses as on the queue-group subjects.
func (s Subjects) KVLocal(id, op string) string { return s.Prefix + ".kv.local." + id + "." + op }

// FromLocal returns subject with a KVLocal prefix of node id turned back
// into the queue-group subject the client published (unchanged if it has
// none).
func (s Subjects) FromLocal(id, subject string) string {
	if p := s.Prefix + ".kv.local." + id + "."; strings.HasPrefix(subject, p) {
		return s.Prefix + ".kv." + subject[len(p):]
	}
	return subject
}

// KVNodeBatch is the subject of a batch of client operations addressed
// to node id: "<prefix>.kv.node.<id>.batch". The body is a ClientBatch
// (keys travel in it, so any valid key can be batched) and the node
// answers with ClientBatchReply messages. It cannot clash with KVNode,
// whose subjects have at least one token after the operation.
func (s Subjects) KVNodeBatch(id string) string { return s.Prefix + ".kv.node." + id + ".batch" }

// KVBatch is the subject of a raw batch: "<prefix>.kv.batch", in the
// queue group and mapped to the node a client is connected to, as the
// other client subjects are. The body is JSON or msgpack (rawbatch.go);
// the Go client pipelines on KVNodeBatch instead.
func (s Subjects) KVBatch() string { return s.Prefix + ".kv.batch" }

// Ring is the subject of the placement endpoint: "<prefix>.kv.ring". Every
// node serves it in the queue group and answers with the store's
// placement table as JSON (see Placement), whatever the payload. It lives
// under "<prefix>.kv." with the rest of the client API, so a client
// allowed the client subjects may fetch it.
func (s Subjects) Ring() string { return s.Prefix + ".kv.ring" }

// NodeRPC is the subject node id serves replica requests on.
func (s Subjects) NodeRPC(id string) string { return s.Prefix + ".node." + id + ".rpc" }

// AdminStatus is the subject every node answers with its status (a
// NodeStatus, JSON), outside any queue group: a request there gathers
// one reply per node.
func (s Subjects) AdminStatus() string { return s.Prefix + ".admin.status" }

// AdminNodeStatus is the subject node id alone answers with its status.
func (s Subjects) AdminNodeStatus(id string) string {
	return s.Prefix + ".admin.node." + id + ".status"
}

// AdminNodeReplicas is the subject node id answers with its own replicas
// of the keys asked for: the body is a Request whose items are RPCRead
// items, the answer a Reply, as on the node's RPC subject. It reads the
// node's store only, and is for operators and tests, who may not speak
// on the node's RPC subject.
func (s Subjects) AdminNodeReplicas(id string) string {
	return s.Prefix + ".admin.node." + id + ".replicas"
}

// AdminRemove is the subject one node answers a removal on: the body is
// the id of the member to remove (a dead node); the reply is empty, or
// an error.
func (s Subjects) AdminRemove() string { return s.Prefix + ".admin.remove" }

// AdminNodeLeave is the subject node id answers to start its leave (an
// empty body); the reply is empty, or an error.
func (s Subjects) AdminNodeLeave(id string) string {
	return s.Prefix + ".admin.node." + id + ".leave"
}

// AdminInvite is the subject one node (the queue group's pick) answers
// with a new join token in its text form. The body is empty for a token
// valid DefaultTokenTTL, or a Go duration ("30m") within
// MinTokenTTL..MaxTokenTTL.
func (s Subjects) AdminInvite() string { return s.Prefix + ".admin.invite" }

// AdminJoin is the subject one node answers a JoinRequest on, with a
// JoinReply or an error (see token.go).
func (s Subjects) AdminJoin() string { return s.Prefix + ".admin.join" }

// Events is the subject a change of key is published on:
// "<prefix>.events.<key>" for a subject-safe key (SubjectSafeKey), else
// EventsBase. Every event carries its key in the Kvmesh-Key header too.
func (s Subjects) Events(key string) string {
	if !SubjectSafeKey(key) {
		return s.EventsBase()
	}
	return s.Prefix + ".events." + key
}

// EventsBase is the subject of the change events of keys that are not
// subject-safe: "<prefix>.events", with the key in the Kvmesh-Key header
// only.
func (s Subjects) EventsBase() string { return s.Prefix + ".events" }

// EventsPattern is the subject that matches the events of the keys
// pattern matches: pattern is a key or a NATS wildcard pattern of keys
// ("orders.>", "orders.*.state", ">" for every key), which must be
// subject-safe but for its wildcard tokens (ValidPattern).
func (s Subjects) EventsPattern(pattern string) string { return s.Prefix + ".events." + pattern }

// ValidPattern checks a key pattern of a watch: tokens separated by '.',
// none empty, each a literal subject-safe token, "*" (any one token) or,
// last only, ">" (one or more tokens).
func ValidPattern(pattern string) error {
	if pattern == "" || len(pattern) > MaxKeyLen {
		return Errorf(ErrInvalidKey, "pattern must be 1..%d bytes", MaxKeyLen)
	}
	toks := strings.Split(pattern, ".")
	for i, tok := range toks {
		switch {
		case tok == "*":
		case tok == ">" && i == len(toks)-1:
		case !SubjectSafeKey(tok) || ValidateKey(tok) != nil:
			return Errorf(ErrInvalidKey, "pattern %q: bad token %q", Clip(pattern, 64), Clip(tok, 32))
		}
	}
	return nil
}

// MatchPattern reports whether key matches pattern (ValidPattern) as its
// event subject would match the pattern's: token by token, "*" any one
// token, ">" the rest (at least one token). It is how a watcher filters
// the events of keys that are not subject-safe, which all arrive on
// EventsBase.
func MatchPattern(pattern, key string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		ktok, krest, kmore := strings.Cut(key, ".")
		switch {
		case ptok == ">" && !pmore:
			return true
		case ptok != "*" && ptok != ktok:
			return false
		case !pmore || !kmore:
			return pmore == kmore
		}
		pattern, key = prest, krest
	}
}

// KeyFromSubject extracts the key of a client request on subject for op,
// on the queue-group subject or on node's own (KVNode) subject. It
// returns ErrInvalidKey when the subject carries no valid key.
func (s Subjects) KeyFromSubject(op, subject string, node ...string) (string, error) {
	p := s.Prefix + ".kv." + op + "."
	for _, id := range node {
		if np := s.Prefix + ".kv.node." + id + "." + op + "."; strings.HasPrefix(subject, np) {
			p = np
		}
	}
	if !strings.HasPrefix(subject, p) {
		return "", Errorf(ErrInvalidKey, "subject %q is not a %s request", Clip(subject, 64), op)
	}
	key := subject[len(p):]
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if !SubjectSafeKey(key) {
		return "", Errorf(ErrInvalidKey, "key %q is not subject-safe: send it in the %s header", Clip(key, 64), HdrKey)
	}
	return key, nil
}

// ValidateKey checks the data-model limits of a key: 1..MaxKeyLen bytes of
// valid UTF-8 with no control characters.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return Errorf(ErrInvalidKey, "empty key")
	case len(key) > MaxKeyLen:
		return Errorf(ErrInvalidKey, "key is %d bytes, limit %d", len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return Errorf(ErrInvalidKey, "key is not valid UTF-8")
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return Errorf(ErrInvalidKey, "key contains a control character")
		}
	}
	return nil
}

// SubjectSafeKey reports whether key can travel as subject tokens: no
// whitespace, no empty token (leading, trailing or doubled '.'), and no
// '*' or '>' wildcard token.
func SubjectSafeKey(key string) bool {
	if key == "" {
		return false
	}
	for _, tok := range strings.Split(key, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		if strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}

// ValidateNodeID checks a node id: 1..MaxNodeIDLen bytes of letters,
// digits, '-' and '_' so it can be a single subject token.
func ValidateNodeID(id string) error {
	if id == "" || len(id) > MaxNodeIDLen {
		return Errorf(ErrInvalidOption, "node id must be 1..%d bytes", MaxNodeIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return Errorf(ErrInvalidOption, "node id %q: only letters, digits, '-' and '_'", Clip(id, 64))
		}
	}
	return nil
}

// An actor is what a clock entry and a dot name: one run of one node's
// store, "<node id>.<suffix>". The suffix is ActorSuffixLen characters of
// base32hex (0-9, a-v), the first seven the unix second the actor was
// made, the other eight 40 random bits, so actor ids sort by age within a
// node and a node never reuses one (see node/identity.go). A bare node id
// is an actor too (tests and tools write such clocks).
const ActorSuffixLen = 15

const base32hex = "0123456789abcdefghijklmnopqrstuv"

// NewActorID returns the actor id made at unix second created from 40
// random bits.
func NewActorID(node string, created int64, random uint64) string {
	b := make([]byte, 0, len(node)+1+ActorSuffixLen)
	b = append(b, node...)
	b = append(b, '.')
	b = appendBase32(b, uint64(max(created, 0)), 7)
	return string(appendBase32(b, random, 8))
}

func appendBase32(b []byte, v uint64, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		b = append(b, base32hex[(v>>(5*i))&31])
	}
	return b
}

// ActorNode returns the node id part of an actor id.
func ActorNode(a string) string {
	id, _, _ := strings.Cut(a, ".")
	return id
}

// ActorCreated returns the unix second actor a was made (0 for a bare
// node id): clock pruning drops the oldest first.
func ActorCreated(a string) int64 {
	_, suffix, found := strings.Cut(a, ".")
	if !found || len(suffix) != ActorSuffixLen {
		return 0
	}
	var v int64
	for i := range 7 {
		v = v<<5 | int64(strings.IndexByte(base32hex, suffix[i]))
	}
	return v
}

// ValidateActorID checks a clock actor: a node id, optionally followed by
// "." and an ActorSuffixLen-character base32hex suffix.
func ValidateActorID(a string) error {
	id, suffix, found := strings.Cut(a, ".")
	if err := ValidateNodeID(id); err != nil {
		return err
	}
	if !found {
		return nil
	}
	if len(suffix) != ActorSuffixLen {
		return Errorf(ErrInvalidOption, "actor %q: bad suffix", Clip(a, 80))
	}
	for i := 0; i < len(suffix); i++ {
		if strings.IndexByte(base32hex, suffix[i]) < 0 {
			return Errorf(ErrInvalidOption, "actor %q: bad suffix", Clip(a, 80))
		}
	}
	return nil
}

func literalSubject(s string) bool {
	return SubjectSafeKey(s)
}

// Gossip is the subject of membership messages of the given kind, e.g.
// "heartbeat" for each node's periodic heartbeat (protocol.Heartbeat).
func (s Subjects) Gossip(kind string) string { return s.Prefix + ".gossip." + kind }
