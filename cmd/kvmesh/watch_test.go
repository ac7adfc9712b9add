package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestWatch: kvmesh watch prints the events of the keys its pattern
// matches, one a line (or one JSON object a line with --json), keys that
// are not subject-safe included, and exits after --count events.
func TestWatch(t *testing.T) {
	n := startNodeIn(t, t.TempDir())
	t.Setenv("KVMESH_URL", n.ClientURL())
	if code, _, errs := kvmesh(t, "", "watch"); code != 2 || !strings.Contains(errs, "PATTERN") {
		t.Fatalf("watch without a pattern: %d %q", code, errs)
	}
	if code, _, errs := kvmesh(t, "", "watch", "a..b"); code != 1 || !strings.Contains(errs, "pattern") {
		t.Fatalf("watch a bad pattern: %d %q", code, errs)
	}
	for _, asJSON := range []bool{false, true} {
		pr, pw := io.Pipe()
		args := []string{"watch", "--count", "12", "w.>"}
		if asJSON {
			args = append(args, "--json")
		}
		var errb bytes.Buffer // run's alone until done
		done := make(chan int, 1)
		go func() {
			code := run(args, strings.NewReader(""), pw, &errb)
			pw.Close()
			done <- code
		}()
		lines := make(chan string, 64)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		put := func(args ...string) {
			t.Helper()
			if code, _, errs := kvmesh(t, "", args...); code != 0 {
				t.Fatalf("%v: %d %s", args, code, errs)
			}
		}
		// Wait until the watch is subscribed: its line of a probe.
		deadline := time.Now().Add(10 * time.Second)
		for i, seen := 0, false; !seen; i++ {
			if time.Now().After(deadline) {
				t.Fatal("watch shows no event")
			}
			put("put", "--blind", fmt.Sprintf("w.probe.%d", i), "p")
			select {
			case <-lines:
				seen = true
			case <-time.After(100 * time.Millisecond):
			}
		}
		put("put", "w.a", `{"n": 1}`)
		put("del", "w.a")
		put("put", "w.b c", "two\nlines")
		put("put", "other", "not shown")
		var got []string
		for len(got) < 3 {
			select {
			case l := <-lines:
				if !strings.Contains(l, "w.probe") {
					got = append(got, l)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("lines so far: %q", got)
			}
		}
		if !asJSON {
			want := []string{`put w.a {"n": 1}`, "delete w.a", `put w.b c "two\nlines"`}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("watch printed %q, want %q", got, want)
			}
		} else {
			for i, want := range []map[string]string{{"op": "put", "key": "w.a", "value": `{"n": 1}`}, {"op": "delete", "key": "w.a"}, {"op": "put", "key": "w.b c", "value": "two\nlines"}} {
				var m map[string]any
				if err := json.Unmarshal([]byte(got[i]), &m); err != nil {
					t.Fatalf("line %q: %v", got[i], err)
				}
				for k, v := range want {
					if m[k] != v {
						t.Fatalf("line %q: %s is %v, want %q", got[i], k, m[k], v)
					}
				}
				if m["node"] != "solo" || m["context"] == "" || m["version"] == nil || m["time"] == nil {
					t.Fatalf("line %q lacks the node, context, version or time", got[i])
				}
			}
		}
		// --count: it exits 0 after 12 events.
		for i := 0; ; i++ {
			put("put", "--blind", fmt.Sprintf("w.end.%d", i), "e")
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("watch exited %d: %s", code, errb.String())
				}
			case <-time.After(50 * time.Millisecond):
				if i < 100 {
					continue
				}
				t.Fatal("watch did not exit after --count events")
			}
			break
		}
		for range lines { // drain
		}
	}
}

// TestConditionalPut: put --if-absent and --if-version, del
// --if-version: a lost condition exits 4 with the key's current context
// on stderr, which a retry passes on.
func TestConditionalPut(t *testing.T) {
	n := startNodeIn(t, t.TempDir())
	t.Setenv("KVMESH_URL", n.ClientURL())
	ctxOf := func(errs string) string {
		t.Helper()
		for _, l := range strings.Split(errs, "\n") {
			if c, ok := strings.CutPrefix(l, "context: "); ok {
				return c
			}
		}
		t.Fatalf("no context in %q", errs)
		return ""
	}
	code, _, errs := kvmesh(t, "", "put", "--if-absent", "-v", "lock", "me", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("put --if-absent: %d %s", code, errs)
	}
	first := ctxOf(errs)
	if code, _, errs = kvmesh(t, "", "put", "--if-absent", "lock", "you"); code != 4 || !strings.Contains(errs, "the key has a value") {
		t.Fatalf("put --if-absent on a held key: %d %q", code, errs)
	}
	if ctxOf(errs) != first {
		t.Fatalf("the conflict's context %q is not the key's %q", ctxOf(errs), first)
	}
	code, _, errs = kvmesh(t, "", "put", "-v", "--if-version", first, "lock", "me again")
	if code != 0 {
		t.Fatalf("put --if-version: %d %s", code, errs)
	}
	if code, _, errs = kvmesh(t, "", "del", "--if-version", first, "lock"); code != 4 {
		t.Fatalf("del --if-version with a stale context: %d %q", code, errs)
	}
	if code, _, errs = kvmesh(t, "", "del", "--if-version", ctxOf(errs), "lock"); code != 0 {
		t.Fatalf("del --if-version with the current context: %d %q", code, errs)
	}
	if code, _, _ := kvmesh(t, "", "get", "lock"); code != 3 {
		t.Fatalf("get after the conditional delete: %d", code)
	}
	for _, args := range [][]string{
		{"put", "--if-absent", "--blind", "k", "v"},
		{"put", "--if-absent", "--if-version", "x", "k", "v"},
		{"put", "--if-version", "x", "--context", "y", "k", "v"},
		{"del", "--if-absent", "k"},
	} {
		if code, _, errs := kvmesh(t, "", args...); code != 2 {
			t.Errorf("%v: %d %q, want a usage error", args, code, errs)
		}
	}
}

// TestWatchInitial: kvmesh watch --initial prints the values the keys of
// its pattern hold now, in key order (deleted and unmatched keys left
// out), then the changes made after.
func TestWatchInitial(t *testing.T) {
	n := startNodeIn(t, t.TempDir())
	t.Setenv("KVMESH_URL", n.ClientURL())
	for _, kv := range [][2]string{{"cfg.b", "2"}, {"cfg.a", "1"}, {"cfg.gone", "x"}, {"cfgx", "no"}, {"other", "no"}} {
		if code, _, errs := kvmesh(t, "", "put", kv[0], kv[1]); code != 0 {
			t.Fatalf("put %s: %d %s", kv[0], code, errs)
		}
	}
	if code, _, errs := kvmesh(t, "", "del", "cfg.gone"); code != 0 {
		t.Fatalf("del: %d %s", code, errs)
	}
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		code := run([]string{"watch", "--initial", "--count", "3", "cfg.>"}, strings.NewReader(""), pw, &errb)
		pw.Close()
		done <- code
	}()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	next := func() {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended after %q: %s", got, errb.String())
			}
			got = append(got, l)
		case <-time.After(10 * time.Second):
			t.Fatalf("no line after %q", got)
		}
	}
	next()
	next()
	if want := []string{"put cfg.a 1", "put cfg.b 2"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("initial lines %q, want %q", got, want)
	}
	if code, _, errs := kvmesh(t, "", "put", "cfg.c", "3"); code != 0 {
		t.Fatalf("put: %d %s", code, errs)
	}
	next()
	if got[2] != "put cfg.c 3" {
		t.Fatalf("the change after: %q", got[2])
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not exit after --count lines")
	}
}
