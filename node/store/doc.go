// Package store keeps one node's replicas in a bbolt file behind a write-ahead log.
//
// A record is one key of one partition: the bbolt key is the partition as
// two big-endian bytes followed by the key bytes, in the "data" bucket, and
// the value is a protocol.EncodeObject record behind a CRC-32C of the key
// and the record, checked at every read. Keys of a partition are
// therefore contiguous and in key order, which Scan (and anti-entropy)
// relies on. A "meta" bucket holds the store's format version, the random
// id it was created with, a clean-shutdown mark and small node metadata.
//
// Every file operation goes through a disk.FS, so that tests can crash
// the store as a power loss would (disk.Sim).
//
// # Writes
//
// Every write is a read-modify-write: a MergeFunc gets the stored object
// and returns the one to store. Writes go through a bounded queue to one
// committer goroutine, which takes the first queued write (blocking), then
// whatever else is already queued (without waiting) up to MaxBatch, merges
// them all in memory, appends their records to a write-ahead log as one
// frame, calls the logged callbacks of ApplyLogged (the write is in the
// page cache now), syncs the log (one sequential write and one fdatasync
// per batch), and only then makes them visible and calls each write's done
// callback. A lone
// writer therefore commits at once (there is no batching timer, unlike
// bbolt's DB.Batch), and under load many writes share one sync. Writes to
// the same key in one batch apply in queue order, each merge seeing the
// result of the previous one.
//
// The records also go to an in-memory table, and when it holds
// MemtableBytes a checkpoint moves them into bbolt in one transaction, in
// key order, off the committer's path: bbolt rewrites each page once per
// checkpoint rather than once per batch, and syncs twice per checkpoint
// rather than per batch. Open replays what no checkpoint covered (wal.go
// has the format and the crash cases).
//
// # Dropping a partition
//
// DropPartition (drop.go) removes a partition a node no longer owns. It
// first has the committer make a cut between two batches: from then on
// the committer notes the partition's keys it commits, and the active
// memtable is checkpointed, so that every record written before the cut
// is in bbolt and in no log segment Open would replay. Then it deletes
// the partition's keys from bbolt, a chunk per transaction, but those
// written after the cut. The log needs no drop marker, and a crash leaves
// some keys deleted and the rest intact.
//
// # Damage
//
// A crash can only tear the log's last, unsynced frame. Damage anywhere
// else (a bad frame followed by a valid one, an older segment, a bbolt
// page or record after an unclean stop) fails Open with a *CorruptError
// naming the file and the offset, and changes nothing: Quarantine moves
// the files aside so that the node can start empty and be refilled by its
// peers. A failed log write or sync, or a failed checkpoint, stops all
// writes for good (Broken, Options.OnFail); reads go on.
//
// # Reads
//
// Get and Scan read the in-memory tables, then bbolt through read-only
// transactions, and copy everything out. They never wait for the
// committer, and see only writes whose log record is synced.
package store
