// Package node is one kvmesh storage node: it embeds a NATS server that
// clusters with the other nodes' over routes, keeps its replicas in a
// bbolt file, serves the replica RPC of its peers and coordinates client
// requests. The deciding logic lives in pure sub-packages (ring, version,
// quorum); this package wires them to the network (transport, embedded)
// and the disk (store).
//
// # A write, end to end
//
//  1. A client publishes kvmesh.kv.put.<key> (or the node-addressed
//     kvmesh.kv.node.<id>.put.<key>) with the value as payload and,
//     optionally, Kvmesh-W and the Kvmesh-Context of an earlier read.
//     NATS hands it to one node of the "kvmesh" queue group (api.go).
//  2. The node validates the request and maps the key to its partition and
//     the partition's N owners (ring). If it is not an owner, it forwards
//     the write to the first reachable owner (forward.go): only an owner
//     may issue the write's dot.
//  3. The owner issues the dot (issue.go): under a per-key lock it applies
//     the write to its newest object of the key with version.Update (the
//     new sibling supersedes what the client's context saw), queues the
//     result for the local group commit (store) and sends it to the other
//     owners at once (outbox.go batches per peer), so the local and the
//     remote fsyncs overlap.
//  4. Each replica merges the object into its own with version.Sync in
//     its store's next commit and acknowledges after fsync (replica.go).
//  5. The coordinator counts acknowledgements (quorum.Tally) and answers
//     after W of them with the new causal context (write.go); if W cannot
//     be reached it waits for every owner's answer or the timeout and says
//     how many acknowledged.
//
// # A read
//
// The coordinator asks every owner for its object (its own from the local
// store), answers after R replies with their merge (quorum.MergeReads:
// all siblings no reply superseded, the joined clock as context), keeps
// collecting until all owners answered or the timeout, and then sends the
// merged object to the owners that answered with something older (read
// repair).
//
// # Concurrency
//
// Handlers run on NATS delivery goroutines and never block on the disk or
// the network: writes go through the store's bounded queue, operations are
// small state machines (readOp, writeOp, forwardOp) driven by replies and
// timers and found by tag in pendingOps. The node owns every goroutine it
// starts (heartbeats, outbox senders, the store's committer) and Close
// stops them all.
package node
