// Package merkle holds the per-partition hash trees of anti-entropy and
// the record digest they are built from: Digest hashes a key's record so
// that two replicas' digests are equal exactly when version.Equal says
// their objects are, and Shape places a key in a leaf bucket.
//
// Everything here is pure: no goroutines, no clock, no I/O.
package merkle
