package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"86400", Max},
		{"86401", Max},
		{"99999999999999999999", Max},
		{"Wed, 21 Oct 2026 07:29:00 GMT", time.Minute},
		{"Wed, 21 Oct 2026 07:28:00 GMT", 0},
		{"Wed, 21 Oct 2026 07:27:00 GMT", 0},
		{"Mon, 01 Jan 0001 00:00:00 GMT", 0},
		{"Sun, 21 Oct 2046 07:28:00 GMT", Max},
		{"later", 0},
		{"1.5", 0},
		{"+5", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Parse(tt.in, now)); diff != "" {
				t.Errorf("Parse(%q) (-want +got)\n%s", tt.in, diff)
			}
		})
	}
	if got := Header(http.Header{"Retry-After": {"30"}}, now); got != 30*time.Second {
		t.Errorf("Header = %v, want 30s", got)
	}
}

// FuzzParse feeds Retry-After values a throttling server could send: never
// a panic, never a negative wait, never more than Max, and whole seconds
// are read as such.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0", "7", "120", "-1", "86401", "99999999999999999999", "Wed, 21 Oct 2026 07:28:00 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "Sun, 22 Nov 2026 01:00:30 GMT", "soon"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := Parse(v, now)
		if d < 0 || d > Max {
			t.Fatalf("Parse(%q) = %v, outside [0, %v]", v, d, Max)
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 && n < 86400 && d != time.Duration(n)*time.Second {
			t.Fatalf("Parse(%q) = %v, want %ds", v, d, n)
		}
	})
}
