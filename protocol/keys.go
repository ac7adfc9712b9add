package protocol

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Key listing. A client asks any node for the keys that start with a
// prefix (Subjects.KVKeys); that node, the coordinator, asks every owner
// of the store's partitions for its records in key order (RPCKeys, an
// item of a node-to-node Request) and merges them:
//
//	RPCKeys  item:   ps: [partition, ...] ascending, px: the key prefix
//	                 (left out: every key), a: cursor (the page starts
//	                 after this key), n: at most this many records,
//	                 m: byte budget of the page's records
//	         result: rec: [[key, clock, siblings], ...] in key order
//	                 across the partitions, as a scan page's (scan.go)
//	                 but with every value left out (nil): the clocks and
//	                 tombstone flags are what the coordinator merges,
//	                 a: the last key of the page when records may remain
//	                 after it, left out when the partitions are done
//
// A listing reads records without their values, so its pages are small
// whatever the values' size.

// RPCKeys asks a node for a page of its records, values left out, of the
// partitions Parts whose keys start with Prefix, after the key After, in
// key order across the partitions (keys.go).
const RPCKeys uint8 = 7

// The client-facing listing's page sizes (Kvmesh-Limit).
const (
	// DefaultKeysLimit is a page's keys when the client gives no limit.
	DefaultKeysLimit = 1000
	// MaxKeysLimit bounds a page's keys: a page is built in rounds of at
	// most MaxScanRecords records per node, and memory of the
	// coordinator grows with the page.
	MaxKeysLimit = 10000
)

// keysParts: the smallest partition index is a positive fixint.
var keysParts = listSpec{name: "partitions", minSize: 1, max: MaxPartitions}

// validKeysItem checks the fields of an RPCKeys item, and that no other
// op carries them.
func validKeysItem(it *Item) error {
	if it.Op != RPCKeys {
		if len(it.Parts) > 0 || it.Prefix != "" || it.Limit != 0 {
			return Errorf(ErrMalformed, "request: listing fields on op %d", it.Op)
		}
		return nil
	}
	if it.Limit < 0 || it.Limit > MaxScanRecords {
		return Errorf(ErrMalformed, "request: listing limit %d, want 0..%d", it.Limit, MaxScanRecords)
	}
	if it.Prefix != "" {
		if err := ValidatePrefix(it.Prefix); err != nil {
			return err
		}
	}
	for i, p := range it.Parts {
		if p < 0 || p >= MaxPartitions || i > 0 && p <= it.Parts[i-1] {
			return Errorf(ErrMalformed, "request: partition %d at %d not ascending in [0, %d)", p, i, MaxPartitions)
		}
	}
	return nil
}

// ValidatePrefix checks a key prefix of a listing: "" (every key) or what
// a key may be (ValidateKey), since a prefix longer than any key, or with
// bytes no key has, lists nothing by construction.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(prefix); err != nil {
		return Errorf(ErrInvalidKey, "prefix: %v", err)
	}
	return nil
}

// The reply to a listing is JSON, a KeysPage:
//
//	{"keys":["user.1","user.2"],"next":"dXNlci4y"}
//
// and with Kvmesh-Detail: true also "entries":[KeyEntry, ...], one per
// key in the same order. An empty page has "keys":[].
// JSON because keys are UTF-8 text without control characters
// (ValidateKey), so a JSON string carries every key exactly, one per
// element whatever bytes it holds, and JSON is what the nats CLI shows,
// jq reads and every language parses; the body is mostly the keys' own
// bytes, so msgpack would save little. "next" is left out on the last
// page.

// KeysPage is the body of a listing's reply.
type KeysPage struct {
	Keys    []string   `json:"keys"`
	Entries []KeyEntry `json:"entries,omitempty"`
	// Next is the cursor of the next page (Kvmesh-Cursor), "" on the
	// last page. It is opaque: a page may be empty and still have one.
	Next string `json:"next,omitempty"`
}

// KeyEntry is one listed key with its details: the number of live
// values (more than 1: siblings), the causal context a write passes to
// supersede them (Kvmesh-Context), and, when every value has a TTL, the
// time the key will read as not found (RFC 3339, as Kvmesh-Expires).
type KeyEntry struct {
	Key      string `json:"key"`
	Siblings int    `json:"siblings"`
	Context  string `json:"context,omitempty"`
	Expires  string `json:"expires,omitempty"`
}

// EncodeCursor returns the cursor of the page after key: base64url of
// the key, unpadded. A cursor travels in a header and a JSON string;
// keys may start or end with spaces, which header parsing trims.
func EncodeCursor(key string) string {
	if key == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// DecodeCursor checks a cursor from a client and returns the key the
// page starts after; "" gives "" (the first page).
func DecodeCursor(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > base64.RawURLEncoding.EncodedLen(MaxKeyLen) {
		return "", Errorf(ErrInvalidOption, "cursor of %d bytes", len(s))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", Errorf(ErrInvalidOption, "cursor %q: not a cursor a listing gave", Clip(s, 64))
	}
	if err := ValidateKey(string(b)); err != nil {
		return "", Errorf(ErrInvalidOption, "cursor %q: not a cursor a listing gave", Clip(s, 64))
	}
	return string(b), nil
}

// ParseKeysLimit turns a Kvmesh-Limit header value into a page size: ""
// gives DefaultKeysLimit.
func ParseKeysLimit(s string) (int, error) {
	if s == "" {
		return DefaultKeysLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxKeysLimit {
		return 0, Errorf(ErrInvalidOption, "limit %q: want 1..%d", Clip(s, 32), MaxKeysLimit)
	}
	return n, nil
}

// KeysPrefixFromSubject returns the key prefix of a listing request on
// subject: the rest of "<prefix>.kv.keys.<key prefix>" (inSubject), or
// "" when subject is "<prefix>.kv.keys" itself (the prefix, if any, is
// in the Kvmesh-Prefix header).
func (s Subjects) KeysPrefixFromSubject(subject string) (prefix string, inSubject bool, err error) {
	base := s.KVBase(OpKeys)
	if subject == base {
		return "", false, nil
	}
	if !strings.HasPrefix(subject, base+".") {
		return "", false, Errorf(ErrInvalidKey, "subject %q is not a keys request", Clip(subject, 64))
	}
	prefix = subject[len(base)+1:]
	return prefix, true, ValidatePrefix(prefix)
}
