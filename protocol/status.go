package protocol

// NodeStatus is a node's answer on the admin status subjects, JSON: what
// an operator checks first. Times are unix nanoseconds.
type NodeStatus struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// Key is the node's public key ("N..."), its identity among the
	// members.
	Key string `json:"key"`
	// Actor is the id the node issues its writes' dots under this run.
	Actor string `json:"actor"`
	// Started is when this run started.
	Started int64 `json:"started"`
	// Replicas, Partitions and Prefix are the store's settings.
	Replicas   int    `json:"replicas"`
	Partitions int    `json:"partitions"`
	Prefix     string `json:"prefix"`
	// Conflicts is the node's conflict mode: "siblings" or "lww"
	// (last-writer-wins). Every node of a store must use the same.
	Conflicts string `json:"conflicts"`
	// OtherConflicts lists the members whose heartbeats show another
	// mode than this node's, as "id=mode": a misconfigured store whose
	// replicas will not converge.
	OtherConflicts []string `json:"other_conflicts,omitempty"`
	// Members are the store's members as this node knows them; Alive
	// those it heard from lately (itself included).
	Members []string `json:"members"`
	Alive   []string `json:"alive"`
	// Records are the member records the node holds, with the
	// partitions each member owns in its ring.
	Records []MemberInfo `json:"records,omitempty"`
	// Suspect and Down are the members its failure detector suspects
	// (silent a few heartbeats) or holds down (silent longer): a down
	// member keeps its place in the ring and is asked last.
	Suspect []string `json:"suspect,omitempty"`
	Down    []string `json:"down,omitempty"`
	// DC is the node's data center; Chores the member that runs its data
	// center's chores as this node sees it.
	DC     string `json:"dc,omitempty"`
	Chores string `json:"chores,omitempty"`
	// Transfer is the copying of the partitions this node gains in the
	// last membership change that gave it any.
	Transfer *TransferStatus `json:"transfer,omitempty"`
	// RefusedHeartbeats counts the gossip messages this node ignored
	// since it started: malformed, unsigned, signed by a key that is not
	// their sender's, or from no member (a replayed one is ignored too,
	// uncounted: it cannot be told from one overtaken). RefusedRecords counts
	// member records that did not verify under the cluster key (forged,
	// tampered). Neither changes membership or liveness.
	RefusedHeartbeats int64 `json:"refused_heartbeats,omitempty"`
	RefusedRecords    int64 `json:"refused_records,omitempty"`
	// StoreError is why the node's store stopped taking writes (a full
	// disk, an I/O error); empty while it is healthy. A node whose store
	// failed serves reads and forwards writes; restart it once the disk
	// is fixed.
	StoreError string `json:"store_error,omitempty"`
	// ReadRepairs counts the stale replicas this node's reads have sent
	// the merged object to since it started (read repair).
	ReadRepairs int64 `json:"read_repairs,omitempty"`
	// DigestMatches counts the digests of other replicas that this
	// node's reads found equal to its own replica (their value was not
	// sent); DigestMisses those that differed (the value was read again).
	DigestMatches int64 `json:"digest_matches,omitempty"`
	DigestMisses  int64 `json:"digest_misses,omitempty"`
	// AntiEntropy is the node's anti-entropy, and the roots of its
	// partitions' trees.
	AntiEntropy *AntiEntropyStatus `json:"anti_entropy,omitempty"`
	// Inflight is the number of client operations it coordinates now.
	Inflight int64 `json:"inflight"`
	// Hints is the node's sloppy quorum and hinted handoff.
	Hints HintStatus `json:"hints"`
}

// HintStatus is what a node's status says of its hints: those it holds
// as a fallback for owners that were down, and what it delivered. The
// counters count since the node started.
type HintStatus struct {
	// Pending is the hints the node holds, (partition, owner) pairs not
	// delivered yet, in Partitions partitions; 0 once every hint drained.
	// Survives restarts.
	Pending    int `json:"pending"`
	Partitions int `json:"partitions,omitempty"`
	// PendingWrites is the hinted writes the pending hints took since
	// the node started (a restart counts from 0 again).
	PendingWrites int64 `json:"pending_writes,omitempty"`
	// Delivered counts the hints delivered (and deleted), and Records
	// the records the handoff pushed to owners for them.
	Delivered int64 `json:"delivered,omitempty"`
	Records   int64 `json:"records,omitempty"`
	// FallbackWrites counts the hinted writes this node stored as a
	// fallback; SloppyWrites the writes it coordinated that fallbacks
	// acknowledged (at least one).
	FallbackWrites int64 `json:"fallback_writes,omitempty"`
	SloppyWrites   int64 `json:"sloppy_writes,omitempty"`
	// Stale counts the hinted records the handoff did not deliver because
	// they were older than the tombstone grace period (node/compact.go).
	Stale int64 `json:"stale,omitempty"`
}

// MemberInfo is a member record as kvmesh status shows it.
type MemberInfo struct {
	ID          string `json:"id"`
	Key         string `json:"key"`
	Status      string `json:"status"` // joining, up, leaving or left
	DC          string `json:"dc,omitempty"`
	Client      string `json:"client,omitempty"`
	Route       string `json:"route,omitempty"`
	Incarnation uint64 `json:"incarnation"`
	Version     uint64 `json:"version"`
	// Partitions is the number of partitions the member owns (a replica
	// of) in the node's ring.
	Partitions int `json:"partitions"`
}

// TransferStatus is the progress of a node's partition transfers.
type TransferStatus struct {
	Partitions int64 `json:"partitions"` // partitions the node gains
	Done       int64 `json:"done"`       // copied from a majority of their owners
	Keys       int64 `json:"keys"`       // records copied so far
	Bytes      int64 `json:"bytes"`
	Started    int64 `json:"started"`            // unix nanoseconds
	Finished   int64 `json:"finished,omitempty"` // unix nanoseconds; 0 while it runs
}

// AntiEntropyStatus is a node's anti-entropy (node/antientropy.go):
// totals since it started, and per partition it owns, its tree's root
// and when an exchange last compared it with every other owner.
type AntiEntropyStatus struct {
	Interval string `json:"interval"` // between rounds; "off"

	Rounds     int64         `json:"rounds"`     // rounds done
	LastRound  int64         `json:"last_round"` // unix nanoseconds of the last round's end; 0: none yet
	Exchanges  int64         `json:"exchanges"`  // partition exchanges with a peer
	Differed   int64         `json:"differed"`   // exchanges whose trees differed
	Pulled     int64         `json:"pulled"`     // records merged from peers
	Pushed     int64         `json:"pushed"`     // records written to peers
	Rebuilt    int64         `json:"rebuilt,omitempty"`
	Purged     int64         `json:"purged"` // tombstones purged by compaction
	Partitions []PartitionAE `json:"partitions"`
}

// PartitionAE is one owned partition's anti-entropy state. Two owners of
// a partition hold identical records exactly when their roots are equal
// (up to a 2^-64 chance).
type PartitionAE struct {
	P    int    `json:"p"`
	Root string `json:"root"`           // the tree's root, 16 hex digits; "" while it has none (no exchange yet)
	Last int64  `json:"last,omitempty"` // unix nanoseconds; 0: never
}
