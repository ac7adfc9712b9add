// Package merkle holds the per-partition hash trees of anti-entropy: each
// replica keeps one Tree per partition, updated as its records change,
// and two replicas of a partition exchange their trees to find the few
// keys whose records differ, without listing the keys they agree on.
//
// # Digest
//
// Digest(key, object) is a 64-bit hash of a key's record, equal on two
// replicas exactly when version.Equal says their objects are equal: the
// key, the clock in order (valid clocks are sorted; version.Equal compares
// them in order too) and the siblings as a multiset. 0 means absent. It is
// SHA-256 truncated to 8 bytes: fixed across processes and Go versions,
// and no choice of values makes two records collide. 64 bits suffice: a
// differing record goes unseen with probability 2^-64 per comparison, and
// 8 bytes is what the tree adds and the key lists carry per key.
//
// # Shape
//
// A tree has a fixed Shape, the same on every replica: Depth levels of
// Fanout children below the root. The default, fanout 16 and depth 3,
// has 4096 leaf buckets and 4369 nodes of 8 bytes: 34 KiB per tree, 8.6
// MiB for 256 partitions, whatever the number of keys. A key's bucket is
// the top bits of a hash of the key salted apart from protocol.KeyHash
// (Shape.Bucket): the keys of a partition share KeyHash modulo the
// partition count and must still spread over all buckets.
//
// # Why sums
//
// A leaf bucket holds the sum mod 2^64 of element(key, digest), a mix of
// the key's hash and its digest, over its keys; an inner node holds the
// sum of its children, so every node is a hash of the set of (key,
// digest) pairs below it. Addition commutes and has an inverse, so:
//
//   - Update(key, old, new) adds element(new)-element(old) to the Depth+1
//     nodes on the key's path: O(depth), no rehashing of siblings, no
//     allocation;
//   - the tree depends only on the final set, not on the order of the
//     updates, so it needs no lock ordering with the store beyond "every
//     change is reported once", and Rebuild from a scan gives the very
//     same tree.
//
// A sum rather than an XOR: under XOR a change reported twice cancels,
// and a replica whose store has the key would look exactly like one that
// lacks it, so the exchange would never repair the other. Two sets
// differ in a node's sum only by chance 2^-64, as with a hash of the
// children. The sums are not adversary-proof (a
// client writing many crafted keys could make a bucket's sum collide);
// read repair still sees any difference that an exchange misses.
//
// # Exchange
//
// Replica A sends its root (Tree.Start). Replica B answers with
// Tree.Step: equal, done; else its hashes of the Fanout children of the
// root. A answers with Step: its hashes of the children of the nodes
// that differ; and so on, alternating, until a side receives the leaf
// level and gets the differing buckets. At most Depth+1 messages; with d
// differing keys each message holds at most Fanout*d hashes, so an
// exchange moves O(d * Depth * Fanout) hashes, and one hash when the
// replicas agree. The two sides then list the (key, digest) pairs of the
// differing buckets (Item, found with Bucket over a scan) and DiffKeys
// names the keys to sync with version.Sync. If the buckets differed but
// no key does, a tree is out of step with its records: RebuildBucket.
//
// Cost with 100k keys of 1 KiB per node (3 nodes, N=3, 256 partitions:
// about 390 keys per partition, 0.1 per bucket on average):
//
//   - memory: 256 trees of 34 KiB, 8.6 MiB, whatever the key count;
//   - keeping them: a SHA-256 of each written record (about 1.4 us for
//     1 KiB) and an Update (a key hash and 4 additions, about 0.1 us);
//     the start-up Rebuild of all 256 trees hashes every record once,
//     100 MB in about 0.15 s;
//   - replicas that agree: one 8-byte root and an empty answer per
//     partition and pair of replicas, 512 exchanges per node per round;
//   - d differing keys in a partition: at most 1+16+16d+16d hashes
//     (about 136+256d bytes plus node indexes) in 4 messages, then key
//     lists of about 1.1 keys per differing bucket, then the d records.
//
// Tens of millions of keys per node would want a wider shape (fanout 32,
// depth 3: 32768 buckets, 264 KiB per tree) to keep the key lists short.
//
// Everything here is pure: no goroutines, no clock, no I/O. A Tree is
// owned by one replica's partition and is not safe for concurrent use;
// Digest, DiffKeys and Shape's methods are.
package merkle
