package tomlpos

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeyLines(t *testing.T) {
	doc := `# comment [not.a.table]
top = 1 # trailing
[a]
b.c = "x" # dotted
"q.d" = '''
multi
e = 1
'''
arr = [
  { in = 1 }, # comment
  "s]",
]
[[tables]]
k = """a "" \""" b"""
[ a . "sub key" ]
z = {x = {y = 2}}
`
	want := map[string]int{
		"top": 2, "a": 3, "a.b": 4, "a.b.c": 4, `a."q.d"`: 5, "a.arr": 9, "a.arr.in": 10,
		"tables": 13, "tables.k": 14, `a."sub key"`: 15, `a."sub key".z`: 16, `a."sub key".z.x`: 16, `a."sub key".z.x.y`: 16,
	}
	if diff := cmp.Diff(want, KeyLines(doc)); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// FuzzKeyLines: the key scanner sees whatever the user wrote; it must end
// and never panic.
func FuzzKeyLines(f *testing.F) {
	for _, s := range []string{"a = 1", "[a]\nb = [\n{c = 'x'}]", `k = """x`, "[[x]]\ny = {z = 1,", "'", "\"\\", "a.\"b\\u00e9\" = 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		KeyLines(s)
	})
}
