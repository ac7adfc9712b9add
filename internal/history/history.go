// Package history holds what the clients of a kvmesh fault test did and
// the checkers that judge it: a history of operations (who, when, what was
// written, what was read, how it ended), the final reads taken after the
// faults healed, and the replica dumps taken to check convergence.
//
// Everything here is pure: no network, no clock, no goroutines. Both
// fault tiers record a history and hand it to Check and Diverged: the
// fault suite (e2e), while real node processes are killed, paused and
// partitioned, and the simulation (node/sim_test.go), while in-process
// nodes on simulated disks crash and lose power in fake time. The unit
// tests of this package feed them hand-made histories, including ones
// each checker must reject (a checker that cannot fail is worth nothing).
//
// The workload the checkers understand (notes/reliability.md section 2):
//
//   - unique puts: each key written once, with a unique sealed value;
//   - blind puts: register keys written by many clients without a
//     context, so every write stays a sibling;
//   - set-adds on a few hot keys: read (R=2), union of the sibling sets
//     plus one new element, put with the read's causal context;
//   - reads;
//   - deletes of a unique key by the worker that wrote it.
package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"github.com/kvmesh/kvmesh/protocol"
)

// Kind is the kind of a client operation.
type Kind string

// The kinds of operations of the workload.
const (
	// KindPut writes a unique value: to a unique key, once, or blind
	// (without context) to a register key. Context is what it sent.
	KindPut Kind = "put"
	// KindAdd writes a hot key: the union of the sets it read plus Elem,
	// with the read's causal context.
	KindAdd Kind = "add"
	// KindRead reads a key (also the read half of a set-add).
	KindRead Kind = "read"
	// KindDel deletes a unique key; only the worker that wrote it does.
	KindDel Kind = "del"
)

// Outcome is how an operation ended, as the client saw it.
type Outcome string

// Outcomes, as in Jepsen (:ok, :fail, :info).
const (
	// OK: acknowledged (for a read: answered, found or not found).
	OK Outcome = "ok"
	// Fail: definitely not applied (refused before anything was written).
	Fail Outcome = "fail"
	// Unknown: may or may not have taken effect (a timeout, a quorum not
	// reached after some replica may have written it).
	Unknown Outcome = "unknown"
)

// OutcomeOf classifies the error of a client call (nil: OK). Only errors
// that mean the request was refused before anything was written are
// Fail; a timeout or a quorum not reached may have left the write on
// some replica, which read repair can then spread: Unknown. A read of a
// key that is not found is OK. The errors are protocol's sentinels, which
// the client and a node's Go API both return.
func OutcomeOf(err error) (Outcome, string) {
	switch {
	case err == nil, errors.Is(err, protocol.ErrKeyNotFound):
		return OK, ""
	case errors.Is(err, protocol.ErrInvalidKey), errors.Is(err, protocol.ErrInvalidOption),
		errors.Is(err, protocol.ErrInvalidContext), errors.Is(err, protocol.ErrMalformed),
		errors.Is(err, protocol.ErrValueTooLarge), errors.Is(err, protocol.ErrOverloaded),
		errors.Is(err, protocol.ErrTooManySiblings), errors.Is(err, protocol.ErrConflict):
		return Fail, err.Error()
	case errors.Is(err, protocol.ErrNodeUnavailable) && strings.Contains(err.Error(), "no kvmesh node serves"):
		return Fail, err.Error() // the client found no responder: no node got it
	default:
		return Unknown, err.Error()
	}
}

// Op is one client operation of a history. Times are nanoseconds since
// the run began, taken before the call and after its answer.
type Op struct {
	ID      int     `json:"id"`
	Worker  int     `json:"w"`
	Kind    Kind    `json:"k"`
	Key     string  `json:"key"`
	Start   int64   `json:"s"`
	End     int64   `json:"e"`
	Outcome Outcome `json:"o"`
	Err     string  `json:"err,omitempty"`
	// Value is what a put or add wrote (sealed; see Seal and EncodeSet).
	Value string `json:"v,omitempty"`
	// Elem is the element an add added to its hot key's set.
	Elem string `json:"el,omitempty"`
	// Found, Values and Siblings are what an OK read returned.
	Found    bool     `json:"f,omitempty"`
	Values   []string `json:"vs,omitempty"`
	Siblings int      `json:"sib,omitempty"`
	// Weak marks a read whose quorum need not meet the writes' (R+W <= N,
	// such as R=1 beside W=2 of 3): even under Config.Strict it is not
	// expected to see acknowledged writes (P6, P7).
	Weak bool `json:"weak,omitempty"`
	// Sloppy marks a write that fallbacks may have acknowledged in place
	// of owners that were down (a sloppy quorum: no PW): until the hints
	// drain, a quorum read of the owners need not see it, so P6 and P7's
	// read checks do not hold reads to it; it must not be lost (P1).
	Sloppy bool `json:"sloppy,omitempty"`
	// Context is the causal context a read returned, or the one a write
	// sent.
	Context string `json:"ctx,omitempty"`
	// Over lists the values a write's Context certainly covers, so that
	// the write supersedes them: the value of the put whose answer gave
	// the context, or the values of the read that did. Empty for a blind
	// write.
	Over []string `json:"over,omitempty"`
}

// Writes reports whether op writes a value (a put or an add).
func (op *Op) Writes() bool { return op.Kind == KindPut || op.Kind == KindAdd }

// String is a one-line account of op for reports.
func (op *Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s..%s w%d %s %s", op.ID, ns(op.Start), ns(op.End), op.Worker, op.Kind, op.Key)
	if op.Elem != "" {
		fmt.Fprintf(&b, " +%s", op.Elem)
	} else if op.Value != "" {
		fmt.Fprintf(&b, " %s", clip(op.Value))
	}
	if op.Weak {
		b.WriteString(" (weak)")
	}
	fmt.Fprintf(&b, " => %s", op.Outcome)
	if op.Err != "" {
		fmt.Fprintf(&b, " (%s)", clip(op.Err))
	}
	if op.Kind == KindRead && op.Outcome == OK {
		b.WriteString(" " + readString(op))
	}
	if op.Context != "" {
		fmt.Fprintf(&b, " ctx=%s", clip(op.Context))
	}
	if len(op.Over) > 0 {
		fmt.Fprintf(&b, " over=%q", op.Over)
	}
	return b.String()
}

// Final is the read of one key with R=all after the faults healed.
type Final struct {
	Key      string   `json:"key"`
	Found    bool     `json:"f,omitempty"`
	Values   []string `json:"vs,omitempty"`
	Siblings int      `json:"sib,omitempty"`
	// Err is set when no final read of the key succeeded in time; its
	// acknowledged writes are then unverified, which fails the run.
	Err string `json:"err,omitempty"`
	// Tries is how many reads it took.
	Tries int `json:"tries,omitempty"`
}

// WriteJSONL writes ops, one JSON object a line.
func WriteJSONL[T any](w io.Writer, items []T) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range items {
		if err := enc.Encode(&items[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads what WriteJSONL wrote.
func ReadJSONL[T any](r io.Reader) ([]T, error) {
	var out []T
	dec := json.NewDecoder(r)
	for {
		var v T
		if err := dec.Decode(&v); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
		out = append(out, v)
	}
}

// Seal appends a checksum to payload, so that a corrupt value read back
// is told apart from a phantom one.
func Seal(payload string) string {
	return fmt.Sprintf("%s#%08x", payload, crc32.ChecksumIEEE([]byte(payload)))
}

// Unseal returns the payload of a sealed value and whether its checksum
// holds.
func Unseal(v string) (string, bool) {
	i := strings.LastIndexByte(v, '#')
	if i < 0 || len(v)-i != 9 {
		return "", false
	}
	p := v[:i]
	return p, Seal(p) == v
}

const setPrefix = "set:"

// EncodeSet is the sealed value of a hot key holding elems: sorted,
// duplicates removed. Elements must not contain ',' or '#'.
func EncodeSet(elems []string) string {
	s := slices.Clone(elems)
	slices.Sort(s)
	s = slices.Compact(s)
	return Seal(setPrefix + strings.Join(s, ","))
}

// DecodeSet returns the elements of a value EncodeSet made, and false if
// it is not one or its checksum is wrong.
func DecodeSet(v string) ([]string, bool) {
	p, ok := Unseal(v)
	if !ok || !strings.HasPrefix(p, setPrefix) {
		return nil, false
	}
	p = p[len(setPrefix):]
	if p == "" {
		return nil, true
	}
	return strings.Split(p, ","), true
}

// Union is the union of the sets of values; values that are not sets
// (or are corrupt) are skipped: the phantom checker reports them.
func Union(values []string) map[string]bool {
	u := make(map[string]bool)
	for _, v := range values {
		elems, ok := DecodeSet(v)
		if !ok {
			continue
		}
		for _, e := range elems {
			u[e] = true
		}
	}
	return u
}
