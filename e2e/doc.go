// Package e2e holds the end-to-end tests: they build the kvmesh binary,
// run real node processes (on loopback, or in network namespaces for the
// partition tests), kill, pause, partition and restart them, and check
// through the client and the wire protocol only that no acknowledged
// write was lost. See fault_test.go for the fault suite and
// internal/history for its checkers.
package e2e
