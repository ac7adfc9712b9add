package protocol

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
