// Package store keeps one node's replicas in a single bbolt file.
//
// A record is one key of one partition: the bbolt key is the partition as
// two big-endian bytes followed by the key bytes, in the "data" bucket, and
// the value is a protocol.EncodeObject record. Keys of a partition are
// therefore contiguous and in key order, which Scan (and anti-entropy)
// relies on. A "meta" bucket holds small node metadata.
//
// # Writes
//
// Every write is a read-modify-write: a MergeFunc gets the stored object
// and returns the one to store. Writes go through a bounded queue to one
// committer goroutine, which takes the first queued write (blocking), then
// whatever else is already queued (without waiting) up to MaxBatch, applies
// them all in one bbolt transaction, commits with fsync, and only then
// calls each write's done callback. A lone writer therefore commits at once
// (there is no batching timer, unlike bbolt's DB.Batch), and under load many
// writes share one fsync. Writes to the same key in one batch apply in
// queue order, each merge seeing the result of the previous one.
//
// # Reads
//
// Get and Scan read through read-only transactions and copy everything out
// before the transaction ends. They never wait for the committer.
package store
