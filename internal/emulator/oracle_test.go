package emulator

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestIndependentOracle keeps the emulator an independent oracle: its code
// imports no mailoauth package but the TOML position helper, so a client
// bug cannot be copied into the server it is tested against.
func TestIndependentOracle(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"github.com/mailoauth/mailoauth/internal/tomlpos": true}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/mailoauth/mailoauth/") && !allowed[p] {
				t.Errorf("%s imports %s: the emulator must not use mailoauth's own packages", f, p)
			}
		}
	}
}
