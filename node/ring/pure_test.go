package ring

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The package is pure (see STYLE.md): standard library only, and nothing
// that reads the clock, draws randomness, does I/O or starts goroutines.
func TestPackageIsPure(t *testing.T) {
	forbidden := map[string]bool{
		"time": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true,
		"hash/maphash": true, "os": true, "net": true, "sync": true, "sync/atomic": true,
		"unsafe": true, "runtime": true, "reflect": true,
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %q, outside the standard library", name, path)
			}
			if forbidden[path] {
				t.Errorf("%s imports %q: placement must not depend on the clock, randomness, I/O or goroutines", name, path)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s: go statement at %s", name, fset.Position(g.Pos()))
			}
			return true
		})
	}
}
