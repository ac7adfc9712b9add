package protocol

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		ok   bool
	}{
		{"empty", "", false},
		{"one byte", "a", true},
		{"1024 bytes", strings.Repeat("k", MaxKeyLen), true},
		{"1025 bytes", strings.Repeat("k", MaxKeyLen+1), false},
		{"1024 bytes of 4-byte runes", strings.Repeat("🙂", MaxKeyLen/4), true},
		{"1026 bytes of 3-byte runes", strings.Repeat("日", MaxKeyLen/3+1), false},
		{"dots, slashes, unicode", "users/42.profile:é日本", true},
		{"space is not a control char", "a b", true},
		{"invalid UTF-8", "a\xffb", false},
		{"truncated rune", "\xe6\x97", false},
		{"surrogate half", "\xed\xa0\x80", false},
		{"overlong encoding", "\xc0\xaf", false},
		{"NUL", "a\x00b", false},
		{"newline", "a\nb", false},
		{"tab", "a\tb", false},
		{"carriage return", "a\r", false},
		{"DEL", "\x7f", false},
		{"C1 control U+0085", "a\u0085", false},
		{"C1 control U+009F", "\u009f", false},
		{"escape", "\x1b[31m", false},
		{"U+FFFD itself is valid", "\ufffd", true},
		{"no-break space", "a\u00a0b", true},
	} {
		err := ValidateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("%s: ValidateKey(%q) = %v, want ok=%v", tc.name, Clip(tc.key, 20), err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: error %v is not ErrInvalidKey", tc.name, err)
		}
	}
}

func TestSubjectSafeKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"a.b.c", true},
		{"users.42", true},
		{"日本.🙂", true},
		{"a-b_c:d/e", true},
		{"", false},
		{".", false},
		{".a", false},
		{"a.", false},
		{"a..b", false},
		{"*", false},
		{">", false},
		{"a.*", false},
		{"a.>", false},
		{"*.a", false},
		{"a*b", false}, // stricter than NATS, which takes a*b as a literal token
		{"a>", false},
		{"a b", false},
		{" a", false},
		{"a\t", false},
		{"a\rb", false},
		{"a\nb", false},
	} {
		if got := SubjectSafeKey(tc.key); got != tc.ok {
			t.Errorf("SubjectSafeKey(%q) = %v, want %v", tc.key, got, tc.ok)
		}
	}
}

var keyFromSubjectCases = []struct {
	op, subject, key string // key "" means an error
}{
	{OpGet, "kvmesh.kv.get.a", "a"},
	{OpGet, "kvmesh.kv.get.a.b.c", "a.b.c"},
	{OpPut, "kvmesh.kv.put.users.42.profile", "users.42.profile"},
	{OpDel, "kvmesh.kv.del.日本", "日本"},
	{OpGet, "kvmesh.kv.get.kvmesh.kv.get.x", "kvmesh.kv.get.x"},
	{OpGet, "kvmesh.kv.get." + strings.Repeat("k", MaxKeyLen), strings.Repeat("k", MaxKeyLen)},
	{OpGet, "kvmesh.kv.get." + strings.Repeat("k", MaxKeyLen+1), ""},
	{OpGet, "kvmesh.kv.get.", ""},
	{OpGet, "kvmesh.kv.get", ""},
	{OpGet, "kvmesh.kv.put.a", ""},
	{OpGet, "kvmesh.kv.getx.a", ""},
	{OpGet, "other.kv.get.a", ""},
	{OpGet, "kvmeshx.kv.get.a", ""},
	{OpGet, "xkvmesh.kv.get.a", ""},
	{OpGet, "KVMESH.kv.get.a", ""},
	{OpGet, "", ""},
	{OpGet, "kvmesh.kv.get.*", ""},
	{OpGet, "kvmesh.kv.get.>", ""},
	{OpGet, "kvmesh.kv.get.a.*", ""},
	{OpGet, "kvmesh.kv.get.a.>", ""},
	{OpGet, "kvmesh.kv.get.a..b", ""},
	{OpGet, "kvmesh.kv.get..a", ""},
	{OpGet, "kvmesh.kv.get.a.", ""},
	{OpGet, "kvmesh.kv.get.a b", ""},
	{OpGet, "kvmesh.kv.get.a\x00", ""},
	{OpGet, "kvmesh.kv.get.a\xff", ""},
	{"", "kvmesh.kv..a", "a"},
	{"*", "kvmesh.kv.*.a", "a"}, // op is ours, not the client's: taken literally
}

func TestKeyFromSubject(t *testing.T) {
	s, err := NewSubjects("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range keyFromSubjectCases {
		key, err := s.KeyFromSubject(tc.op, tc.subject)
		if tc.key == "" {
			if !errors.Is(err, ErrInvalidKey) || key != "" {
				t.Errorf("KeyFromSubject(%q, %q) = %q, %v; want ErrInvalidKey", tc.op, Clip(tc.subject, 40), key, err)
			}
			continue
		}
		if err != nil || key != tc.key {
			t.Errorf("KeyFromSubject(%q, %q) = %q, %v; want %q", tc.op, Clip(tc.subject, 40), key, err, Clip(tc.key, 40))
		}
		checkKeyFromSubject(t, tc.op, tc.subject)
	}
}

func TestKeyFromSubjectOtherPrefix(t *testing.T) {
	s, err := NewSubjects("acme.prod")
	if err != nil {
		t.Fatal(err)
	}
	if key, err := s.KeyFromSubject(OpPut, "acme.prod.kv.put.x.y"); err != nil || key != "x.y" {
		t.Fatalf("got %q, %v", key, err)
	}
	if _, err := s.KeyFromSubject(OpPut, "kvmesh.kv.put.x"); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("default prefix accepted by another store: %v", err)
	}
}

func TestSubjectBuilders(t *testing.T) {
	s, _ := NewSubjects("")
	for _, tc := range []struct{ got, want string }{
		{s.KV(OpGet, "a.b"), "kvmesh.kv.get.a.b"},
		{s.KVBase(OpPut), "kvmesh.kv.put"},
		{s.KVWildcard(OpDel), "kvmesh.kv.del.>"},
		{s.NodeRPC("n1"), "kvmesh.node.n1.rpc"},
		{s.Ring(), "kvmesh.kv.ring"},
		{s.KVNode("n1", OpGet, "a.b"), "kvmesh.kv.node.n1.get.a.b"},
		{s.Events("a.b"), "kvmesh.events.a.b"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestNewSubjects(t *testing.T) {
	for _, tc := range []struct {
		prefix, want string
	}{
		{"", DefaultPrefix},
		{"a", "a"},
		{"a.b", "a.b"},
		{"a..b", ""},
		{".a", ""},
		{"a.", ""},
		{"a.*", ""},
		{">", ""},
		{"a b", ""},
	} {
		s, err := NewSubjects(tc.prefix)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalidOption) {
				t.Errorf("NewSubjects(%q) = %v, %v; want ErrInvalidOption", tc.prefix, s, err)
			}
			continue
		}
		if err != nil || s.Prefix != tc.want {
			t.Errorf("NewSubjects(%q) = %v, %v; want %q", tc.prefix, s, err, tc.want)
		}
	}
}

func TestValidateNodeID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"n1", true},
		{"a", true},
		{"Node-01_eu", true},
		{strings.Repeat("x", MaxNodeIDLen), true},
		{strings.Repeat("x", MaxNodeIDLen+1), false},
		{"", false},
		{"a.b", false},
		{"a*", false},
		{">", false},
		{"a b", false},
		{"né", false},
		{"a\x00", false},
		{"a/b", false},
	} {
		err := ValidateNodeID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateNodeID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidOption) {
			t.Errorf("ValidateNodeID(%q): error %v is not ErrInvalidOption", tc.id, err)
		}
		if tc.ok && !SubjectSafeKey(tc.id) {
			t.Errorf("valid node id %q is not a subject token", tc.id)
		}
	}
}

// The placement subject shares "<prefix>.kv." with the key operations;
// no operation may take it for a request on a key.
func TestRingSubjectIsNoKeyRequest(t *testing.T) {
	s, _ := NewSubjects("")
	for _, op := range []string{OpGet, OpPut, OpDel} {
		if s.Ring() == s.KVBase(op) || strings.HasPrefix(s.Ring(), s.KVBase(op)+".") {
			t.Errorf("ring subject %q overlaps the %s subjects", s.Ring(), op)
		}
		if key, err := s.KeyFromSubject(op, s.Ring(), "ring", "n1"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("KeyFromSubject(%s, %q) = %q, %v; want ErrInvalidKey", op, s.Ring(), key, err)
		}
	}
}

func TestKVNodeBatchSubject(t *testing.T) {
	s, _ := NewSubjects("")
	if got, want := s.KVNodeBatch("n1"), "kvmesh.kv.node.n1.batch"; got != want {
		t.Fatalf("KVNodeBatch = %q, want %q", got, want)
	}
	o, _ := NewSubjects("acme.store")
	if got, want := o.KVNodeBatch("n-2"), "acme.store.kv.node.n-2.batch"; got != want {
		t.Fatalf("KVNodeBatch = %q, want %q", got, want)
	}
	// No operation's node subject covers it: a batch is never taken for
	// a single request on a key, nor the other way round.
	for _, op := range []string{OpGet, OpPut, OpDel} {
		if _, err := s.KeyFromSubject(op, s.KVNodeBatch("n1"), "n1"); err == nil {
			t.Errorf("%s: the batch subject parses as a request", op)
		}
	}
}

func checkKeyFromSubject(t testing.TB, op, subject string) {
	t.Helper()
	s := Subjects{Prefix: DefaultPrefix}
	key, err := s.KeyFromSubject(op, subject)
	if err != nil {
		if key != "" {
			t.Fatalf("key %q returned with error %v", key, err)
		}
		if !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("error %v is not ErrInvalidKey", err)
		}
		return
	}
	if s.KV(op, key) != subject {
		t.Fatalf("KV(%q, %q) = %q, not the subject %q", op, key, s.KV(op, key), subject)
	}
	if len(key) == 0 || len(key) > MaxKeyLen || !utf8.ValidString(key) {
		t.Fatalf("key %q breaks the data-model limits", key)
	}
	for _, tok := range strings.Split(key, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			t.Fatalf("key %q has the token %q", key, tok)
		}
	}
	if k2, err := s.KeyFromSubject(op, s.KV(op, key)); err != nil || k2 != key {
		t.Fatalf("round trip of %q: %q, %v", key, k2, err)
	}
}

func FuzzKeyFromSubject(f *testing.F) {
	for _, tc := range keyFromSubjectCases {
		f.Add(tc.op, tc.subject)
	}
	f.Fuzz(func(t *testing.T, op, subject string) { checkKeyFromSubject(t, op, subject) })
}

// TestPatterns: ValidPattern accepts keys and NATS wildcard patterns of
// keys, and MatchPattern matches a key as NATS matches its event subject.
func TestPatterns(t *testing.T) {
	for _, p := range []string{"a", "a.b", "a.>", ">", "*", "a.*.c", "*.>"} {
		if err := ValidPattern(p); err != nil {
			t.Errorf("ValidPattern(%q): %v", p, err)
		}
	}
	for _, p := range []string{"", "a..b", ".a", "a.", "a.>.b", "a b", "a*.b", "a.b>", strings.Repeat("a", MaxKeyLen+1)} {
		if err := ValidPattern(p); err == nil {
			t.Errorf("ValidPattern(%q) accepted", p)
		}
	}
	for _, c := range []struct {
		pattern, key string
		want         bool
	}{
		{"a", "a", true}, {"a", "a.b", false}, {"a.b", "a", false},
		{">", "a", true}, {">", "a b.c", true},
		{"a.>", "a", false}, {"a.>", "a.b", true}, {"a.>", "a.b c.d", true}, {"a.>", "ab.c", false},
		{"*", "a", true}, {"*", "a.b", false}, {"a.*.c", "a.x y.c", true}, {"a.*.c", "a.x.d", false},
		{"a.*", "a.", true}, {"a.*", "a", false}, {"*.>", "a", false}, {"*.>", "a.b", true},
	} {
		if got := MatchPattern(c.pattern, c.key); got != c.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", c.pattern, c.key, got, c.want)
		}
	}
}
