package protocol

import (
	"errors"
	"fmt"
)

// Error is an error with a stable name and an HTTP-like code that travels
// over NATS: the code in the Nats-Service-Error-Code header, the message in
// Nats-Service-Error and the name in Kvmesh-Error. A receiver rebuilds it
// with FromWire, and errors.Is matches it against the sentinel of the same
// name, so callers on either side of the wire test errors the same way.
type Error struct {
	Code int    // 400, 404, 409, 413, 500 or 503
	Name string // stable identifier, e.g. "quorum_not_reached"
	Msg  string // human text, one line
}

func (e *Error) Error() string { return e.Msg }

// Is reports whether target is a *Error with the same name.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Name == e.Name
}

// Sentinels, grouped by operation. Wrap them with context:
// fmt.Errorf("%w: 1 of 3 replicas answered", ErrQuorumNotReached).
var (
	// Input errors (400, 413): nothing was written.
	ErrInvalidKey     = &Error{400, "invalid_key", "invalid key"}
	ErrInvalidOption  = &Error{400, "invalid_option", "invalid option"}
	ErrInvalidContext = &Error{400, "invalid_context", "invalid causal context"}
	ErrMalformed      = &Error{400, "malformed", "malformed message"}
	ErrValueTooLarge  = &Error{413, "value_too_large", "value too large"}

	// Read errors.
	ErrKeyNotFound = &Error{404, "not_found", "key not found"}

	// Write errors.
	ErrConflict        = &Error{409, "conflict", "conflict"}
	ErrTooManySiblings = &Error{409, "too_many_siblings", "too many siblings"}

	// Availability errors (503): the operation may or may not have taken
	// effect on some replicas; retrying with the same context is safe.
	ErrQuorumNotReached = &Error{503, "quorum_not_reached", "quorum not reached"}
	ErrNodeUnavailable  = &Error{503, "unavailable", "node unavailable"}
	ErrOverloaded       = &Error{503, "overloaded", "overloaded"}

	// ErrInternal is a bug or a disk failure on the node.
	ErrInternal = &Error{500, "internal", "internal error"}
)

var sentinels = []*Error{
	ErrInvalidKey, ErrInvalidOption, ErrInvalidContext, ErrMalformed, ErrValueTooLarge,
	ErrKeyNotFound, ErrConflict, ErrTooManySiblings,
	ErrQuorumNotReached, ErrNodeUnavailable, ErrOverloaded, ErrInternal,
}

// Errorf wraps a sentinel with a formatted message.
func Errorf(sentinel *Error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// Clip shortens untrusted text (a key, a header, a subject) to at most n
// bytes and "...", before it goes into an error message or a report: a
// hostile megabyte must not become a megabyte of log.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Classify returns the wire code and name of err: the first *Error in its
// chain, or 500 "internal" for anything else.
func Classify(err error) (code int, name string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Name
	}
	return ErrInternal.Code, ErrInternal.Name
}

// FromWire rebuilds an error received over the wire. The result matches
// the sentinel of the same name with errors.Is; an unknown name falls back
// to the sentinel of the code's class, so an older client still
// recognises a newer server's errors by code.
func FromWire(code int, name, msg string) error {
	for _, s := range sentinels {
		if s.Name == name {
			return &Error{Code: s.Code, Name: s.Name, Msg: msg}
		}
	}
	fallback := ErrInternal
	switch code {
	case 400:
		fallback = ErrMalformed
	case 404:
		fallback = ErrKeyNotFound
	case 409:
		fallback = ErrConflict
	case 413:
		fallback = ErrValueTooLarge
	case 503:
		fallback = ErrNodeUnavailable
	}
	return &Error{Code: fallback.Code, Name: fallback.Name, Msg: msg}
}
