package node_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPurePackagesStayPure keeps the deciding packages pure (STYLE.md):
// the standard library and the kvmesh packages listed, none of the
// standard packages that reach randomness, the OS, the network or
// concurrency, nothing of package time that reads the clock or arms a
// timer (its types are fine), and no go statements. Time and randomness
// are arguments; the node does the I/O.
func TestPurePackagesStayPure(t *testing.T) {
	pure := map[string][]string{ // package dir -> kvmesh packages it may import
		"ring":    {"github.com/kvmesh/kvmesh/protocol"}, // the key hash, shared with clients
		"version": {"github.com/kvmesh/kvmesh/protocol"},
		"quorum":  {"github.com/kvmesh/kvmesh/protocol", "github.com/kvmesh/kvmesh/node/version"},
		"coord": {"github.com/kvmesh/kvmesh/protocol", "github.com/kvmesh/kvmesh/node/version",
			"github.com/kvmesh/kvmesh/node/quorum"},
		"merkle":     {"github.com/kvmesh/kvmesh/protocol", "github.com/kvmesh/kvmesh/node/version"},
		"membership": {"github.com/kvmesh/kvmesh/protocol", "github.com/kvmesh/kvmesh/node/ring", "github.com/nats-io/nkeys"}, // signatures: pure computation
	}
	clockReads := []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}
	impure := []string{"math/rand", "crypto/rand", "hash/maphash", "os", "net", "sync",
		"syscall", "io/fs", "unsafe", "runtime", "log", "context", "reflect"}
	for dir, allowed := range pure {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no files (%v)", dir, err)
		}
		fset := token.NewFileSet()
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if contains(allowed, path) {
					continue
				}
				if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
					t.Errorf("%s imports %s, which is neither the standard library nor allowed", name, path)
					continue
				}
				for _, p := range impure {
					if path == p || strings.HasPrefix(path, p+"/") {
						t.Errorf("%s imports %s; a pure package takes time, randomness and I/O as arguments", name, path)
					}
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					t.Errorf("go statement at %s; a pure package starts no goroutines", fset.Position(n.Pos()))
				case *ast.SelectorExpr:
					if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && contains(clockReads, n.Sel.Name) {
						t.Errorf("time.%s at %s; a pure package takes the time as an argument", n.Sel.Name, fset.Position(n.Pos()))
					}
				}
				return true
			})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
