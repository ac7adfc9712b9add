package node

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvmesh/kvmesh/node/disk"
	"github.com/kvmesh/kvmesh/node/store"
	"github.com/kvmesh/kvmesh/protocol"
)

// The actor a node issues dots under, and when it may keep it.
//
// A dotted version vector is only correct if an actor never forgets a dot
// it issued: a clock entry (a, c) claims to have seen every dot of a up to
// c, so an actor that lost its dot c and issued c again, or issued c+1 on
// top of a state without c, would make replicas drop an acknowledged
// write (Riak's KV679). A node can forget its own dots when it crashes
// (what it wrote but had not synced), when its data dir is wiped,
// replaced or mounted empty, or when a backup of it is restored. So:
//
//   - A dot leaves the node only once its record is in the node's own log
//     file (store.ApplyLogged): a process crash (kill -9, a panic, an OOM
//     kill) cannot lose it then, the kernel's page cache holds it.
//   - At start a node keeps its previous actor only if nothing else can
//     have happened: the same machine boot (the page cache survived), a run
//     record outside the data dir (runRecord, on tmpfs by default) that
//     names the same actor and the same run token as the store, and no I/O
//     error since. A restored backup carries an older token; a wiped dir
//     has a new store; a power loss, a reboot or a disk error changes the
//     boot or marks the record. In every such case the node takes a new
//     actor, never used before: "<id>.<time><random>".
//
// So a clock gains an entry per machine restart, restore or disk loss of a
// node that coordinated writes of the key, never per process crash or
// clean restart; version.Update and version.Sync prune past
// protocol.MaxClockEntries.

// metaIdentity is the store metadata entry holding the node's identity
// (JSON identity).
const metaIdentity = "identity"

type identity struct {
	Actor string `json:"actor"`
	Token string `json:"token"` // the run token of the run that last started on this store
}

// runRecord is the file "<RunDir>/kvmesh-<store id>.run": what a later
// start on this machine needs to know about the run that last opened the
// store. It is on a file system that does not survive a reboot (tmpfs) by
// default, and never inside the data dir, so a restored copy of the data
// dir cannot bring it back.
type runRecord struct {
	Boot    string `json:"boot"`
	Actor   string `json:"actor"`
	Token   string `json:"token"`
	Tainted string `json:"tainted,omitempty"` // why the run's page cache may not hold its dots
}

// startIdentity decides the actor this run issues dots under and records
// the run. It returns the actor, whether it is the previous run's, and
// the run file's path and record (for taint).
func startIdentity(fsys disk.FS, st *store.Store, id, runDir string, now time.Time) (string, bool, string, runRecord, error) {
	var prev identity
	raw, err := st.GetMeta(metaIdentity)
	if err != nil {
		return "", false, "", runRecord{}, err
	}
	if raw != nil {
		if err := json.Unmarshal(raw, &prev); err != nil {
			return "", false, "", runRecord{}, fmt.Errorf("store metadata %q is corrupt: %w", metaIdentity, err)
		}
	}
	runFile := filepath.Join(runDir, "kvmesh-"+st.ID()+".run")
	var last runRecord
	if b, err := fsys.ReadFile(runFile); err == nil {
		_ = json.Unmarshal(b, &last) // a torn or foreign file is no record
	}
	boot := fsys.BootID()
	keep := prev.Actor != "" && protocol.ActorNode(prev.Actor) == id && protocol.ValidateActorID(prev.Actor) == nil &&
		boot != "" && last.Boot == boot && last.Actor == prev.Actor && last.Token == prev.Token && last.Tainted == ""
	actor := prev.Actor
	if !keep {
		// Never older than the actor it replaces, even if the wall clock
		// went back: version.Prune takes the older actor of a node for a
		// retired one.
		created := max(now.Unix(), protocol.ActorCreated(prev.Actor)+1)
		actor = protocol.NewActorID(id, created, randomUint64()&(1<<40-1))
	}
	var tb [16]byte
	_, _ = rand.Read(tb[:])
	next := identity{Actor: actor, Token: hex.EncodeToString(tb[:])}
	b, _ := json.Marshal(next)
	// The store first (synced), then the run record: a crash between the
	// two leaves them disagreeing, which only costs a new actor.
	if err := st.PutMeta(metaIdentity, b); err != nil {
		return "", false, "", runRecord{}, err
	}
	rec := runRecord{Boot: boot, Actor: actor, Token: next.Token}
	if err := writeRunRecord(fsys, runFile, rec); err != nil {
		return "", false, "", runRecord{}, fmt.Errorf("run record %s: %w", runFile, err)
	}
	return actor, keep, runFile, rec, nil
}

func writeRunRecord(fsys disk.FS, name string, rec runRecord) error {
	if err := fsys.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(rec)
	// Not synced: it only has to survive the process, like the page cache.
	return disk.WriteFile(fsys, name, b, 0o600, false)
}

// defaultRunDir is where run records live by default: tmpfs when the
// machine has one, else the temp dir (a reboot then changes the boot id).
func defaultRunDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// metaSettings is the store metadata entry holding the settings the store
// was created with (JSON settings): every start must use the same.
const metaSettings = "settings"

type settings struct {
	Node       string `json:"node"`
	Replicas   int    `json:"replicas"`
	Partitions int    `json:"partitions"`
	Prefix     string `json:"prefix"`
}

// checkSettings stores the settings of a new store, and refuses a start
// whose settings differ from those the store was created with: another
// partition count or replication factor would hide keys, another node id
// or prefix means the wrong data dir.
func checkSettings(st *store.Store, path string, want settings) error {
	raw, err := st.GetMeta(metaSettings)
	if err != nil {
		return err
	}
	if raw == nil {
		b, _ := json.Marshal(want)
		return st.PutMeta(metaSettings, b)
	}
	var have settings
	if err := json.Unmarshal(raw, &have); err != nil {
		return fmt.Errorf("store metadata %q is corrupt: %w", metaSettings, err)
	}
	var diffs []string
	if have.Node != want.Node {
		diffs = append(diffs, fmt.Sprintf("node id %q (this start: %q)", have.Node, want.Node))
	}
	if have.Replicas != want.Replicas {
		diffs = append(diffs, fmt.Sprintf("replicas %d (this start: %d)", have.Replicas, want.Replicas))
	}
	if have.Partitions != want.Partitions {
		diffs = append(diffs, fmt.Sprintf("partitions %d (this start: %d)", have.Partitions, want.Partitions))
	}
	if have.Prefix != want.Prefix {
		diffs = append(diffs, fmt.Sprintf("prefix %q (this start: %q)", have.Prefix, want.Prefix))
	}
	if len(diffs) > 0 {
		return protocol.Errorf(protocol.ErrInvalidOption, "the store in %s was created with %s: start with the store's settings, or with another data dir", path, strings.Join(diffs, ", "))
	}
	return nil
}
