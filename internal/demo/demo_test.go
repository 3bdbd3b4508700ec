package demo

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRun runs the whole demo against the in-process emulator: every step
// must pass and be printed.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := Run(ctx, &out, Options{Dir: t.TempDir()})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= Steps; i++ {
		if !strings.Contains(out.String(), fmt.Sprintf("[%d/%d]", i, Steps)) {
			t.Errorf("step %d not printed", i)
		}
	}
}
