package quorum

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPure keeps the package pure (see STYLE.md): only the standard
// library and the kvmesh packages below, none of the standard packages
// that reach the clock, randomness, the OS, the network or concurrency,
// and no go statements.
func TestPure(t *testing.T) {
	allowed := map[string]bool{
		"github.com/kvmesh/kvmesh/protocol":     true,
		"github.com/kvmesh/kvmesh/node/version": true,
	}
	impure := []string{"time", "math/rand", "crypto/rand", "os", "net", "sync", "syscall", "io/fs", "unsafe", "runtime", "log", "context"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
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
			if allowed[path] {
				continue
			}
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s, which is not the standard library", name, path)
				continue
			}
			for _, p := range impure {
				if path == p || strings.HasPrefix(path, p+"/") {
					t.Errorf("%s imports %s; a pure package takes time, randomness and I/O as arguments", name, path)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s: go statement at %s; a pure package starts no goroutines", name, fset.Position(g.Pos()))
			}
			return true
		})
	}
}
