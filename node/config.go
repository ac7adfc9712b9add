package node

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kvmesh/kvmesh/node/clock"
	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/transport"
	"github.com/kvmesh/kvmesh/node/version"
	"github.com/kvmesh/kvmesh/protocol"
)

// Config is the configuration of one node. Build it with DefaultConfig
// and change what you need; New calls Validate.
type Config struct {
	// ID names the node: the NATS server name, the subject token of its
	// RPC subject and the prefix of its actor ids in causal clocks.
	// Letters, digits, '-' and '_'; required. A node whose data dir was
	// lost may come back under the same id: it writes under a new actor
	// (identity.go).
	ID string
	// DataDir holds the node's store (DataDir/kvmesh.db and its log).
	// Required.
	DataDir string
	// RunDir holds the node's run record (identity.go), which must not be
	// inside DataDir and should not survive a reboot. Default: /dev/shm
	// if the machine has it, else the temp dir.
	RunDir string
	// KeyFile holds the node's key pair (an nkey seed, owner-only): its
	// identity among the members. Default DataDir/node.nk, created on
	// the first start if missing; a file given here must exist.
	KeyFile string
	// Secret is the store's shared secret, at least 16 random bytes: it
	// keys the tag that seals each causal context to its key and store
	// (protocol.ContextKey), so that no client can make one up. Every node
	// of a store must have the same one. Required.
	Secret []byte
	// FS is the file system the node's files live on. Default disk.OS;
	// the simulation tests give a disk.Sim's.
	FS disk.FS
	// Clock is the node's wall clock and timers: request timeouts,
	// hedges, heartbeats, sibling timestamps. Default clock.Real; tests
	// give a clock.Fake they advance by hand.
	Clock clock.Clock

	// Listen is the NATS client listener "host:port"; port 0 picks a free
	// port. Default "127.0.0.1:4222".
	Listen string
	// Cluster is the NATS route listener "host:port"; port 0 picks a free
	// port. Default "127.0.0.1:6222".
	Cluster string
	// ClusterName is the NATS cluster name; every node of a store uses the
	// same. Default "kvmesh".
	ClusterName string
	// Peers are the route URLs (nats-route://host:port) of the other nodes;
	// listing this node's own URL too is harmless. Empty: a single node.
	Peers []string
	// HTTP is the listener "host:port" of the node's HTTP port: the
	// status page at "/", its data at "/status.json", Prometheus
	// metrics at "/metrics" and the embedded NATS server's monitoring
	// endpoints (/varz, /connz, /routez, /subsz, /healthz, ...); port 0
	// picks a free port (Node.HTTPAddr tells which). Default "": none.
	HTTP string
	// MaxPayload is the NATS max_payload in bytes, identical on all nodes.
	// It bounds values (see protocol.MaxValueLen). Default 1 MiB.
	MaxPayload int32

	// Prefix is the subject prefix of the store. Default "kvmesh".
	Prefix string
	// Replicas is N, the replication factor: every key lives on N nodes.
	// Default 3.
	Replicas int
	// Partitions is Q, the number of fixed partitions of the key space.
	// It can never change for a store. Default 256.
	Partitions int

	// RequestTimeout bounds a client request at its coordinator: replicas
	// that have not answered by then count as failed. Default 2s.
	RequestTimeout time.Duration
	// PeerWait bounds how long Run waits for the peers' routes at start
	// before it serves what it can alone. Default 5s.
	PeerWait time.Duration
	// Heartbeat is the interval of membership heartbeats. Default 1s.
	Heartbeat time.Duration
	// SuspectAfter is how long a peer may stay silent before the failure
	// detector suspects it, and DownAfter before it declares it down (a
	// down owner is asked last by reads and forwarded writes; it keeps
	// its place in the ring). Defaults 3 and 10 heartbeats.
	SuspectAfter, DownAfter time.Duration
	// AntiEntropy is the pause between two anti-entropy rounds, each of
	// which compares every partition the node owns with every other
	// owner alive (antientropy.go). Negative turns it off. Default 10s.
	AntiEntropy time.Duration
	// AntiEntropyRate bounds the records a round syncs, pulled or pushed,
	// a second. Default 5000.
	AntiEntropyRate int
	// Conflicts is how the store resolves concurrent writes of a key:
	// "siblings" (the default; "" too) keeps them as siblings until a
	// write that saw them supersedes them, and loses none; "lww"
	// (last-writer-wins) keeps one value per key, the write with the
	// latest hybrid-logical-clock timestamp, and loses the others, as
	// Cassandra does. Every node of a store must use the same: a replica
	// merges by its own mode, so replicas of different modes never
	// agree. A node hears its peers' modes in their heartbeats and logs
	// and reports those that differ (Status.OtherConflicts).
	Conflicts string
	// TombstoneGrace is how old a tombstone must be before compaction may
	// purge it, once every replica holds it (compact.go): longer than
	// any clock skew between nodes and than a hint may wait to be
	// delivered. Negative keeps tombstones forever. Default 24h.
	TombstoneGrace time.Duration
	// HintRate bounds the records a second this node's hinted handoff
	// pushes to owners that are back (all partitions and owners
	// together), so that delivering the hints of a long outage does not
	// crowd out client traffic. Default 5000 records/s; -1: unthrottled.
	HintRate int
	// StrictQuorum turns the sloppy quorum off: reads and writes count
	// the key's own owners only, as with PW=W and PR=R on every request,
	// so that R + W > N always reads your writes, at the cost of
	// availability while owners are down. Default false.
	StrictQuorum bool
	// MaxInflight bounds the client operations a node coordinates at once;
	// beyond it requests get ErrOverloaded. Default 8192.
	MaxInflight int

	// DataCenter names the node's data center ("" is the default one):
	// it is in the node's member record, and each data center has its own
	// chores owner (chores.go). Letters, digits, '-' and '_'.
	DataCenter string
	// AutoRemoveAfter, when positive, makes the chores owner remove a
	// member down that long, as `kvmesh admin remove` would: its
	// partitions are copied from the remaining replicas. Zero (the
	// default) leaves removal to the operator.
	AutoRemoveAfter time.Duration

	// Join makes a node that is not a member yet join as joining: the
	// partitions it gains stream to it from their owners before it
	// serves them. Without it a new node is up at once: right for the
	// nodes that start a store together, wrong for one added later
	// (acknowledged writes would be on the owners it replaces).
	Join bool

	// Members are node ids known to be members of the store, in addition
	// to those whose member records it holds. Optional with NATS;
	// the whole member set when Transport is set.
	Members []string
	// Transport, when set, replaces NATS entirely: no embedded server, no
	// client API subjects and no gossip; the node serves replica RPC over
	// this transport and clients call Get, Put and Delete directly. The
	// simulation tests run many nodes in one process this way. Default nil.
	Transport transport.Transport

	plantedConfig // test-only settings of a build with the kvmesh_planted tag

	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger
	// NATSLog sends the embedded server's warnings and errors to Logger.
	NATSLog bool
}

// DefaultHintRate is Config.HintRate's default, in records per second.
const DefaultHintRate = 5000

// DefaultConfig returns a Config with every default set; ID and DataDir
// are still to be filled in.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:4222",
		Cluster:        "127.0.0.1:6222",
		ClusterName:    "kvmesh",
		MaxPayload:     protocol.DefaultMaxPayload,
		Prefix:         protocol.DefaultPrefix,
		Replicas:       3,
		Partitions:     256,
		RequestTimeout: 2 * time.Second,
		PeerWait:       5 * time.Second,
		Heartbeat:      time.Second,
		MaxInflight:    8192,

		AntiEntropy:     10 * time.Second,
		AntiEntropyRate: 5000,
		TombstoneGrace:  24 * time.Hour,
		HintRate:        DefaultHintRate,
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if err := protocol.ValidateNodeID(c.ID); err != nil {
		return fmt.Errorf("config: id: %w", err)
	}
	if c.DataDir == "" {
		return fmt.Errorf("config: data dir is required")
	}
	if c.RunDir != "" {
		if rel, err := filepath.Rel(c.DataDir, c.RunDir); err == nil && !strings.HasPrefix(rel, "..") {
			return fmt.Errorf("config: run dir %s is inside the data dir: a restored copy of the data dir would bring it back", c.RunDir)
		}
	}
	for _, m := range c.Members {
		if err := protocol.ValidateNodeID(m); err != nil {
			return fmt.Errorf("config: member %q: %w", m, err)
		}
	}
	if _, err := version.ParseConflicts(c.Conflicts); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := protocol.NewSubjects(c.Prefix); err != nil {
		return fmt.Errorf("config: prefix: %w", err)
	}
	if _, err := protocol.NewContextKey(c.Secret, c.Prefix); err != nil {
		return fmt.Errorf("config: secret: %w", err)
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 15:
		return fmt.Errorf("config: replicas %d: want 1..15", c.Replicas)
	case c.Partitions < 1 || c.Partitions > 1<<16:
		return fmt.Errorf("config: partitions %d: want 1..65536", c.Partitions)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("config: request timeout must be > 0")
	case c.PeerWait < 0:
		return fmt.Errorf("config: peer wait must be >= 0")
	case c.Heartbeat <= 0:
		return fmt.Errorf("config: heartbeat must be > 0")
	case c.SuspectAfter < 0 || c.DownAfter < 0 || c.DownAfter > 0 && c.DownAfter <= c.SuspectAfter:
		return fmt.Errorf("config: suspect after %v, down after %v: want 0 <= suspect < down", c.SuspectAfter, c.DownAfter)
	case c.DataCenter != "" && protocol.ValidateNodeID(c.DataCenter) != nil:
		return fmt.Errorf("config: data center %q: letters, digits, '-' and '_'", c.DataCenter)
	case c.AutoRemoveAfter < 0:
		return fmt.Errorf("config: auto-remove after must be >= 0")
	case c.AntiEntropy == 0 || c.AntiEntropy > 0 && c.AntiEntropyRate < 1:
		return fmt.Errorf("config: anti-entropy every %v at %d records/s: want an interval > 0 (< 0: off) and a rate >= 1", c.AntiEntropy, c.AntiEntropyRate)
	case c.TombstoneGrace == 0:
		return fmt.Errorf("config: tombstone grace must be > 0 (< 0: keep tombstones forever)")
	case c.HintRate < -1 || c.HintRate == 0:
		return fmt.Errorf("config: hint rate %d: want records/s > 0, or -1 for unthrottled", c.HintRate)
	case c.MaxInflight < 1:
		return fmt.Errorf("config: max inflight must be >= 1")
	case c.HTTP != "" && !validHostPort(c.HTTP):
		return fmt.Errorf("config: http %q: want host:port", c.HTTP)
	case c.MaxPayload < 64<<10:
		return fmt.Errorf("config: max payload %d: want >= 64 KiB", c.MaxPayload)
	}
	return nil
}

// validHostPort reports whether addr is "host:port" with a port number
// (the host may be empty: every address).
func validHostPort(addr string) bool {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	port, err := strconv.Atoi(p)
	return err == nil && port >= 0 && port <= 65535
}

func (c *Config) dbPath() string { return filepath.Join(c.DataDir, "kvmesh.db") }
