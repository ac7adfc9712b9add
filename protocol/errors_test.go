package protocol

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestSentinelsAreDistinct(t *testing.T) {
	names := map[string]bool{}
	for _, s := range sentinels {
		if names[s.Name] {
			t.Errorf("name %q used twice", s.Name)
		}
		names[s.Name] = true
		switch s.Code {
		case 400, 404, 409, 413, 500, 503:
		default:
			t.Errorf("%s: code %d is not one of the documented codes", s.Name, s.Code)
		}
		if s.Msg == "" || s.Error() != s.Msg {
			t.Errorf("%s: message %q", s.Name, s.Msg)
		}
	}
	for _, s := range sentinels {
		for _, o := range sentinels {
			if (s == o) != errors.Is(s, o) {
				t.Errorf("errors.Is(%s, %s) = %v", s.Name, o.Name, errors.Is(s, o))
			}
		}
	}
}

func TestFromWireRoundTrip(t *testing.T) {
	for _, s := range sentinels {
		got := FromWire(s.Code, s.Name, "detail")
		if !errors.Is(got, s) {
			t.Errorf("FromWire(%d, %q) does not match its sentinel", s.Code, s.Name)
		}
		if got.Error() != "detail" {
			t.Errorf("FromWire kept message %q", got.Error())
		}
		if code, name := Classify(got); code != s.Code || name != s.Name {
			t.Errorf("Classify(FromWire(%s)) = %d %s", s.Name, code, name)
		}
		for _, o := range sentinels {
			if o != s && errors.Is(got, o) {
				t.Errorf("FromWire(%s) also matches %s", s.Name, o.Name)
			}
		}
		// The name wins over a code that disagrees with it.
		if got := FromWire(599, s.Name, ""); !errors.Is(got, s) {
			t.Errorf("FromWire(599, %q) lost the name", s.Name)
		}
	}
}

// A wrapped sentinel classifies as itself, crosses the wire as code, name
// and message, and on the far side still matches with errors.Is.
func TestErrorsAcrossTheWire(t *testing.T) {
	for _, s := range sentinels {
		for _, err := range []error{
			s,
			fmt.Errorf("x: %w", s),
			fmt.Errorf("put %q on %s: %w", "k", "n2", fmt.Errorf("deeper: %w", s)),
			Errorf(s, "1 of %d replicas answered", 3),
			errors.Join(io.EOF, fmt.Errorf("replica n3: %w", s)),
		} {
			if !errors.Is(err, s) {
				t.Fatalf("errors.Is(%v, %s) is false before the wire", err, s.Name)
			}
			code, name := Classify(err)
			if code != s.Code || name != s.Name {
				t.Fatalf("Classify(%v) = %d %s, want %d %s", err, code, name, s.Code, s.Name)
			}
			back := FromWire(code, name, err.Error())
			if !errors.Is(back, s) {
				t.Fatalf("errors.Is after the wire is false for %v", err)
			}
			if back.Error() != err.Error() {
				t.Fatalf("message changed: %q -> %q", err.Error(), back.Error())
			}
			// and across a second hop, wrapped again on the far side
			if !errors.Is(fmt.Errorf("get: %w", back), s) {
				t.Fatalf("errors.Is after re-wrapping is false for %v", err)
			}
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrQuorumNotReached), ErrQuorumNotReached) {
		t.Fatal("the example in the brief")
	}
}

func TestClassifyForeignErrors(t *testing.T) {
	for _, err := range []error{io.EOF, errors.New("disk on fire"), fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF), nil} {
		if code, name := Classify(err); code != 500 || name != ErrInternal.Name {
			t.Errorf("Classify(%v) = %d %s, want 500 internal", err, code, name)
		}
	}
	// The first *Error in the chain wins.
	err := fmt.Errorf("%w, caused by %w", ErrOverloaded, ErrInternal)
	if code, name := Classify(err); code != 503 || name != ErrOverloaded.Name {
		t.Errorf("got %d %s", code, name)
	}
}

func TestFromWireUnknownName(t *testing.T) {
	for _, tc := range []struct {
		code int
		want *Error
	}{
		{400, ErrMalformed},
		{404, ErrKeyNotFound},
		{409, ErrConflict},
		{413, ErrValueTooLarge},
		{503, ErrNodeUnavailable},
		{500, ErrInternal},
		{0, ErrInternal},
		{-1, ErrInternal},
		{418, ErrInternal},
		{200, ErrInternal},
	} {
		for _, name := range []string{"a_newer_error", "", "Quorum_Not_Reached"} {
			got := FromWire(tc.code, name, "m")
			if !errors.Is(got, tc.want) {
				t.Errorf("FromWire(%d, %q) = %#v, want %s", tc.code, name, got, tc.want.Name)
			}
			var e *Error
			if !errors.As(got, &e) || e.Code != tc.want.Code || e.Msg != "m" {
				t.Errorf("FromWire(%d, %q) = %#v", tc.code, name, got)
			}
		}
	}
}

// A rebuilt error must not alias the sentinel: changing it would change
// every future error of that name.
func TestFromWireDoesNotAliasSentinels(t *testing.T) {
	got := FromWire(503, ErrQuorumNotReached.Name, "x")
	if got == error(ErrQuorumNotReached) {
		t.Fatal("FromWire returned the sentinel itself")
	}
	if ErrQuorumNotReached.Msg != "quorum not reached" {
		t.Fatalf("sentinel message changed: %q", ErrQuorumNotReached.Msg)
	}
}

func TestResultError(t *testing.T) {
	r := ResultError(7, fmt.Errorf("put: %w", ErrQuorumNotReached))
	if r.Tag != 7 || r.Code != 503 || r.Name != ErrQuorumNotReached.Name || r.Err != "put: quorum not reached" {
		t.Fatalf("got %+v", r)
	}
	if !errors.Is(r.Error(), ErrQuorumNotReached) {
		t.Fatal("Result.Error lost the sentinel")
	}
	if (&Result{Tag: 1}).Error() != nil {
		t.Fatal("a result with code 0 is an error")
	}
	if r := ResultError(1, io.EOF); r.Code != 500 || !errors.Is(r.Error(), ErrInternal) {
		t.Fatalf("a foreign error: %+v", r)
	}
}
