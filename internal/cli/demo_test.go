package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDemoCmd runs `mailoauth demo` in-process: exit 0 and every step
// printed on stdout.
func TestDemoCmd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	g := &Globals{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	dir := t.TempDir()
	// Twice in the same --dir: a kept folder from an earlier run works.
	for run := 1; run <= 2; run++ {
		out.Reset()
		if code := Run(ctx, g, []string{"demo", "--dir", dir}); code != ExitOK {
			t.Fatalf("run %d: exit code %d\nstdout:\n%s\nstderr:\n%s", run, code, out.String(), errOut.String())
		}
		for i := 1; i <= 7; i++ {
			if !strings.Contains(out.String(), fmt.Sprintf("[%d/7] ", i)) {
				t.Errorf("run %d: step %d not printed:\n%s", run, i, out.String())
			}
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr not empty:\n%s", errOut.String())
	}
}
