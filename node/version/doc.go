// Package version is kvmesh's causality algebra: version vectors
// (protocol.Clock) and the dotted version vector sets (protocol.Object)
// every replica stores per key, with Riak 2.x DVVSet semantics.
//
// An object is a clock plus siblings. The clock summarises every write the
// replica has seen for the key; each sibling carries the dot (node,
// counter) of the write that created it. A dot is covered by a clock when
// the clock's entry for the dot's node is at least the dot's counter.
// Only an owner of the key coordinates its writes, and it issues its dots
// with contiguous counters from its local object, which already holds every
// earlier dot it issued; objects travel whole between replicas. So a clock
// that covers a dot has seen that write: the write is either one of the
// siblings or was superseded by a write whose context covered it. That is
// what lets Update and Sync drop siblings by coverage alone.
//
// Invariants of a valid object: the clock is sorted by node, unique, with
// counters in 1..protocol.MaxCounter (protocol.Clock.Validate); sibling
// dots are unique and covered by the object's clock. Every object this
// package returns keeps them and lists its siblings sorted by dot (node,
// then counter). Update refuses a write that would leave more than
// protocol.MaxSiblings siblings at its coordinator; a Sync of replicas
// that coordinated concurrently may hold more (see Sync).
//
// A store may instead run in last-writer-wins mode (Conflicts, lww.go):
// the same dots and clocks, but every merge keeps one sibling, the one
// with the largest (Time, Dot), stamped by a hybrid logical clock
// (HLCNext) so that a write that saw another is the larger.
//
// Everything here is pure: no goroutines, no clock, no randomness, no I/O.
// Functions never modify their inputs and are safe to call concurrently on
// shared inputs. Returned clocks and sibling slices are freshly allocated
// and owned by the caller; sibling Values are byte slices shared with the
// inputs, because values are immutable once written and copying up to a
// megabyte per merge would dominate the cost. Do not modify a Value in
// place.
package version
