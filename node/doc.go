// Package node is one kvmesh storage node: it embeds a NATS server that
// clusters with the other nodes' over routes, keeps its replicas in a
// store (a write-ahead log in front of bbolt), serves the replica RPC of
// its peers and coordinates client requests. What decides lives in pure
// sub-packages; this package is the shell that wires them to the
// network, the disk and the clock:
//
//	ring       partitions and preference lists (pure)
//	version    dotted version vectors: update, sync, prune; last-writer-wins (pure)
//	quorum     counting replies, merging reads (pure)
//	coord      the read, write and forward state machines (pure)
//	membership the failure detector, signed member records (pure)
//	store      the write-ahead log, group commit and bbolt
//	disk       the file-system seam (and a simulated disk for tests)
//	transport  all node-to-node traffic: RPC and gossip (NATS, in-memory)
//	clock      the time seam (real, and a fake advanced by hand)
//
// # A write, end to end
//
//  1. A client publishes kvmesh.kv.put.<key> (or the node-addressed
//     kvmesh.kv.node.<id>.put.<key>, or a batch) with the value and,
//     optionally, Kvmesh-W and the Kvmesh-Context of an earlier read. NATS
//     hands it to one node of the "kvmesh" queue group; the node's service
//     (service.go) counts it, and api.go / batch.go check it once:
//     headers, key, quorum, the Kvmesh-TTL (protocol.ParseTTL), and the
//     context's seal (protocol.ContextKey: only a context this store
//     issued for this key opens).
//  2. startWrite (coordinator.go) maps the key to its partition and N
//     owners (ring) and decides where the dot is issued: here if this node
//     is an owner whose store takes writes, else it forwards the write to
//     the first reachable owner (coord.Forward). A delete without context
//     first reads a majority (coord.Read) and supersedes what it saw.
//  3. coord.Write starts with two effects, which the driver (drive.go)
//     carries out: arm the timeout on the Clock, and issue the dot. The
//     issuer (issue.go) stamps the sibling with the time of the write (and
//     with a TTL its expiry, that time plus the TTL: every replica then
//     stores the same), applies it to the newest local object of
//     the key with version.Update under its stripe's lock and queues it to
//     the store's group commit. As soon as the record is in the log file
//     (not yet synced), coord.Write.OnLogged asks to send the object to
//     the other owners (outbox.go batches per peer), so the local and
//     remote fsyncs overlap; no dot leaves the node before its own log
//     holds it (identity.go says why).
//  4. Each replica merges the object into its own with version.Sync in its
//     next group commit and acknowledges after fdatasync (replica.go).
//  5. coord.Write counts acknowledgements (quorum.Tally) and answers after
//     W of them, the local one included, with the new causal context
//     (coord.WriteContext); if W cannot be reached it waits for every
//     owner or the timeout, and says how many acknowledged.
//  6. Acknowledged, the coordinating owner publishes the write's change
//     event on kvmesh.events.<key> if anyone in the mesh subscribes to it,
//     and remembers a value with a TTL to publish its expiry (events.go);
//     then the reply goes to the client.
//
// A conditional write (Kvmesh-If) takes a detour at step 2: it goes to
// the key's first alive owner, which runs the key's conditional writes
// one at a time: a majority read of the owners, coord.CheckCondition,
// then steps 3 to 6 with W a majority of owners and no fallbacks
// (conditional.go).
//
// # A read
//
// coord.Read asks R owners, this node's own replica first (reads.go:
// from the memtables at once, else on a reader goroutine), asks the next
// owner when one fails and every owner left at the hedge deadline,
// answers after R replies with their merge (quorum.MergeReads: every
// sibling no reply superseded, the joined clock as context; api.go
// answers with the siblings that are neither deleted nor expired by this
// node's clock, protocol.Object.LiveAt), and once all
// it asked have answered (or at the timeout) repairs the owners that
// answered with something older.
//
// # A partition transfer
//
// A node that gains a partition pulls it from a current owner
// (transfer.go): it asks for a page of the partition's records after a
// cursor (protocol.RPCScan, alone in its message), the owner's reader
// goroutine fills the page from the store up to a byte budget that fits
// one reply (scan.go), and the puller merges each record with
// version.Sync, as a replica write does, and asks for the next page once
// they are all durable. A stalled transfer returns the cursor it reached
// and resumes from there.
//
// # Membership
//
// The member set is a set of member records (membership.go), each signed
// by the cluster key that every member derives from the store secret, and
// merged without a leader (membership.Set); it is persisted in the store,
// and the ring is a function of it. Nodes gossip heartbeats, signed by
// their node keys, with a digest of their records, and all their records
// when a peer's digest differs. Heartbeats cross the transport like RPC,
// so the simulation reaches them; the gossip callback only offers
// records, and the membership loop verifies and applies them. A
// heartbeat whose signature is not its sender's, or that is older than
// the last one accepted, is ignored. Every accepted heartbeat is a sign
// of life to the failure detector (membership.Detector): a silent peer is
// suspect, then down, and reads and forwarded writes ask it last.
//
// A join, a leave or a removal moves partitions (rebalance.go): reads
// use the serving ring (members up or leaving) and writes are joint over
// it, the target ring (up or joining) and any previous serving ring some
// member may still read from, while each node copies the partitions it
// gains from a majority of their serving owners (transfer.go); then the
// transitions end (membership.Flip), and the nodes drop the partitions
// they no longer own. Routes are mutual TLS with certificates the
// cluster key issues (embedded.RouteAuth); admitRoute refuses members
// that left.
//
// # Listing keys
//
// A listing (kvmesh.kv.keys, keys.go) is coordinated by the node the
// client is connected to, page by page: it asks every owner not held
// down for its records of the partitions it owns after a cursor, in key
// order across them and without values (protocol.RPCKeys;
// store.ScanKeys merges the partitions through a heap), needs r answers
// per partition, and lists the keys up to the smallest last key of the
// owners' pages whose merge, as a read merges it, is live. Lister
// goroutines build the pages, behind a bounded queue.
//
// # Watching it
//
// Every answered client operation, alone or in a batch, is observed in
// a histogram by operation and outcome (metrics.go: one observation, no
// lock); the store reports each log sync through its OnSync hook; the
// rest of the metrics read, at scrape time, the counters the node's
// status already keeps. Config.HTTP serves them (web.go) with the
// embedded server's monitoring endpoints and the status page.
//
// # Concurrency
//
// Transport and service callbacks never block on the disk or the
// network: writes go through the store's bounded queue, reads that reach
// bbolt through the readers' bounded queue, and every coordinated
// operation is a coord state machine whose driver is found by tag in the
// pending map. The node owns every goroutine it starts (the membership
// loop, the outbox senders, the readers, the listers, the store's
// committer) and Close stops them all.
package node
