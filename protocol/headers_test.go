package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseQuorum(t *testing.T) {
	const bad = -1
	for _, tc := range []struct {
		s       string
		n1, n3  int // the result with n=1 and n=3
		n5      int
		comment string
	}{
		{"", 1, 2, 3, "empty means a majority"},
		{QuorumMajority, 1, 2, 3, ""},
		{QuorumOne, 1, 1, 1, ""},
		{QuorumAll, 1, 3, 5, ""},
		{"1", 1, 1, 1, ""},
		{"2", bad, 2, 2, ""},
		{"3", bad, 3, 3, ""},
		{"4", bad, bad, 4, "n+1 for n=3"},
		{"5", bad, bad, 5, ""},
		{"6", bad, bad, bad, "n+1 for n=5"},
		{"0", bad, bad, bad, ""},
		{"-1", bad, bad, bad, ""},
		{"-0", bad, bad, bad, ""},
		{"abc", bad, bad, bad, ""},
		{"2.5", bad, bad, bad, ""},
		{"1e1", bad, bad, bad, ""},
		{"0x2", bad, bad, bad, ""},
		{" 2", bad, bad, bad, ""},
		{"2 ", bad, bad, bad, ""},
		{"One", bad, bad, bad, "names are case-sensitive"},
		{"ALL", bad, bad, bad, ""},
		{"9223372036854775807", bad, bad, bad, "max int64"},
		{"9223372036854775808", bad, bad, bad, "overflows int64"},
		{"99999999999999999999999999999999", bad, bad, bad, ""},
		{"-9223372036854775808", bad, bad, bad, ""},
		{strings.Repeat("9", 10000), bad, bad, bad, "huge"},
		{"+2", bad, 2, 2, "strconv.Atoi takes a sign: harmless"},
		{"02", bad, 2, 2, "and leading zeros"},
	} {
		for _, n := range []struct{ n, want int }{{1, tc.n1}, {3, tc.n3}, {5, tc.n5}} {
			got, err := ParseQuorum(tc.s, n.n)
			name := fmt.Sprintf("ParseQuorum(%q, %d)", Clip(tc.s, 20), n.n)
			if n.want == bad {
				if err == nil || !errors.Is(err, ErrInvalidOption) {
					t.Errorf("%s = %d, %v; want ErrInvalidOption %s", name, got, err, tc.comment)
				}
				if len(err.Error()) > 200 {
					t.Errorf("%s: error not clipped: %d bytes", name, len(err.Error()))
				}
				continue
			}
			if err != nil || got != n.want {
				t.Errorf("%s = %d, %v; want %d %s", name, got, err, n.want, tc.comment)
			}
			if got < 1 || got > n.n {
				t.Errorf("%s = %d, outside 1..%d", name, got, n.n)
			}
		}
	}
}

func TestMaxValueLen(t *testing.T) {
	for _, tc := range []struct {
		maxPayload int64
		want       int
	}{
		{DefaultMaxPayload, DefaultMaxPayload - HeaderAllowance - MaxKeyLen},
		{0, DefaultMaxPayload - HeaderAllowance - MaxKeyLen},
		{-5, DefaultMaxPayload - HeaderAllowance - MaxKeyLen},
		{64 << 20, 64<<20 - HeaderAllowance - MaxKeyLen},
		{HeaderAllowance + MaxKeyLen + 1, 1},
		{HeaderAllowance + MaxKeyLen, 1},
		{1, 1},
		{8 << 20, 8<<20 - HeaderAllowance - MaxKeyLen},
	} {
		if got := MaxValueLen(tc.maxPayload); got != tc.want {
			t.Errorf("MaxValueLen(%d) = %d, want %d", tc.maxPayload, got, tc.want)
		}
	}
	if MaxValueLen(DefaultMaxPayload) != 1014784 {
		t.Errorf("the default value limit moved: %d", MaxValueLen(DefaultMaxPayload))
	}
}

// A replica write of a MaxValueLen value with the longest key, sender id
// and clock still fits in the default payload: HeaderAllowance covers the
// key, the clock and the envelope, and what is left is for NATS headers.
func TestHeaderAllowanceCoversClockAndKey(t *testing.T) {
	var c Clock
	for i := range MaxClockEntries {
		c = append(c, Dot{Node: fmt.Sprintf("%064d", i), Counter: MaxCounter})
	}
	r := &Request{V: Version, From: strings.Repeat("n", MaxNodeIDLen), Items: []Item{{
		Tag: 1<<64 - 1, Op: RPCWrite, Key: strings.Repeat("k", MaxKeyLen),
		Obj: &Object{Clock: c, Siblings: []Sibling{{
			Dot: Dot{Node: strings.Repeat("n", MaxNodeIDLen), Counter: MaxCounter}, Value: make([]byte, MaxValueLen(DefaultMaxPayload)), Time: -1,
		}}},
	}}}
	b, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > DefaultMaxPayload {
		t.Errorf("a write of the largest value is %d bytes, over the %d payload", len(b), DefaultMaxPayload)
	}
	if _, err := DecodeRequest(b); err != nil {
		t.Fatal(err)
	}
}

func TestParseTTL(t *testing.T) {
	const bad = -1
	for _, tc := range []struct {
		s    string
		want time.Duration
	}{
		{"", 0}, // no TTL
		{"30s", 30 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"250ms", 250 * time.Millisecond},
		{"1ns", 1},
		{"30", 30 * time.Second},
		{"+30", 30 * time.Second},
		{"030", 30 * time.Second},
		{"87600h", MaxTTL},
		{"315360000", MaxTTL},
		{"87600h0m0.000000001s", bad},
		{"315360001", bad},
		{"0", bad},
		{"0s", bad},
		{"-1", bad},
		{"-5s", bad},
		{"0.1ns", bad}, // rounds to 0
		{"9223372036854775807", bad},
		{"9223372036854775808", bad},
		{"99999999999999999999h", bad},
		{"30 s", bad},
		{" 30s", bad},
		{"30S", bad},
		{"1d", bad},
		{"s", bad},
		{"1e3", bad},
		{"0x10", bad},
		{strings.Repeat("9", 10000), bad},
	} {
		got, err := ParseTTL(tc.s)
		switch {
		case tc.want == bad && err == nil:
			t.Errorf("ParseTTL(%q) = %v, want an error", Clip(tc.s, 20), got)
		case tc.want == bad && !errors.Is(err, ErrInvalidOption):
			t.Errorf("ParseTTL(%q): %v, want ErrInvalidOption", Clip(tc.s, 20), err)
		case tc.want == bad && len(err.Error()) > 200:
			t.Errorf("ParseTTL(%q): error of %d bytes", Clip(tc.s, 20), len(err.Error()))
		case tc.want != bad && (err != nil || got != tc.want):
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", tc.s, got, err, tc.want)
		}
	}
}
