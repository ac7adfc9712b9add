package protocol

// Anti-entropy exchanges (node/merkle): two replicas of a partition
// compare their hash trees level by level (RPCTree), then list the keys
// of the leaf buckets that differ (RPCBuckets). Both are items of a
// node-to-node Request, with the partition in p:
//
//	RPCTree     item:   l: level, tn: [node index, ...] ascending,
//	                    th: [hash, ...] one per node
//	            result: l, tn, th: the answering side's next frontier (the
//	                    children of the nodes that differ), or
//	                    d: [bucket, ...] the differing leaf buckets when
//	                    the item was at the leaf level; nothing at all
//	                    when no node differed
//	RPCBuckets  item:   bk: [bucket, ...] ascending, a: cursor (the page
//	                    starts after this key), m: byte budget of the keys
//	            result: ks: [key, ...] ascending, ds: [digest, ...] one
//	                    per key, a: the next page's cursor (left out when
//	                    done)
//
// The decoder checks the shapes (counts, order, matching lengths); the
// tree checks that the indexes fit its shape (merkle.Tree.Step).

const (
	// RPCTree is one step of a hash tree exchange of partition Partition
	// (protocol/tree.go).
	RPCTree uint8 = 5
	// RPCBuckets asks for the keys and digests of some leaf buckets of
	// partition Partition (protocol/tree.go).
	RPCBuckets uint8 = 6
)

const (
	// MaxTreeLevel bounds a frontier's level: a tree is at most this deep.
	MaxTreeLevel = 16
	// MaxTreeNodes bounds the node indexes of a frontier and the buckets
	// of a list: the most leaves a tree may have.
	MaxTreeNodes = 1 << 16
	// MaxBucketKeys bounds the keys of one RPCBuckets page.
	MaxBucketKeys = 1 << 16
)

// TreeItemSize is what a key costs in an RPCBuckets page beyond its bytes
// (its string header and its digest), for the budget.
const TreeItemSize = 16

// Frontier is the wire form of a merkle.Frontier: hashes of some nodes
// of one level of a partition's tree.
type Frontier struct {
	Level  int
	Nodes  []int
	Hashes []uint64
}

var (
	// treeNodes: the smallest node index or hash is a positive fixint.
	treeNodes   = listSpec{name: "tree nodes", minSize: 1, max: MaxTreeNodes}
	bucketKeys  = listSpec{name: "bucket keys", minSize: 2, max: MaxBucketKeys}
	bucketDigst = listSpec{name: "bucket digests", minSize: 1, max: MaxBucketKeys}
)

// appendTreeFields writes a frontier's fields, left out when empty.
func appendTreeFields(b []byte, m *mapHeader, level int, nodes []int, hashes []uint64) []byte {
	if level != 0 {
		b = m.int(b, "l", int64(level))
	}
	if len(nodes) > 0 {
		b = appendArray(m.key(b, "tn"), nodes, appendIntElem)
		b = appendArray(m.key(b, "th"), hashes, appendUintElem)
	}
	return b
}

func appendIntElem(b []byte, v *int) []byte     { return appendInt(b, int64(*v)) }
func appendUintElem(b []byte, v *uint64) []byte { return appendUint(b, *v) }

func (d *decoder) intElem(v *int) (err error) {
	*v, err = d.intField()
	return err
}

func (d *decoder) uintElem(v *uint64) (err error) {
	*v, err = d.uint()
	return err
}

func (d *decoder) strElem(v *string) (err error) {
	*v, err = d.str()
	return err
}

// ascending checks that a list of node or bucket indexes is strictly
// increasing and within [0, MaxTreeNodes).
func ascending(what string, xs []int) error {
	for i, x := range xs {
		if x < 0 || x >= MaxTreeNodes || i > 0 && x <= xs[i-1] {
			return Errorf(ErrMalformed, "%s: index %d at %d not ascending in [0, %d)", what, x, i, MaxTreeNodes)
		}
	}
	return nil
}

// validFrontier checks a frontier's shape as it came off the wire.
func validFrontier(what string, level int, nodes []int, hashes []uint64) error {
	if level < 0 || level > MaxTreeLevel {
		return Errorf(ErrMalformed, "%s: tree level %d", what, level)
	}
	if len(nodes) != len(hashes) {
		return Errorf(ErrMalformed, "%s: %d tree nodes, %d hashes", what, len(nodes), len(hashes))
	}
	return ascending(what+": tree nodes", nodes)
}

// validBucketKeys checks an RPCBuckets page: keys valid and ascending, a
// digest each.
func validBucketKeys(keys []string, digests []uint64) error {
	if len(keys) != len(digests) {
		return Errorf(ErrMalformed, "reply: %d bucket keys, %d digests", len(keys), len(digests))
	}
	for i, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
		if i > 0 && k <= keys[i-1] {
			return Errorf(ErrMalformed, "reply: bucket keys out of order at %q", Clip(k, 64))
		}
	}
	return nil
}
