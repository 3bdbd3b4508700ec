package qr

import (
	"os"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	var b strings.Builder
	Write(&b, "https://microsoft.com/devicelogin")
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	// Version 2 (25 modules) + quiet zone 1 each side = 27 columns,
	// half-block rendering halves the rows.
	if len(lines) < 12 || len(lines) > 20 {
		t.Fatalf("QR has %d lines:\n%s", len(lines), b.String())
	}
	if !strings.ContainsAny(b.String(), "█▀▄") {
		t.Errorf("QR has no block characters:\n%s", b.String())
	}
}

func TestShouldDraw(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ShouldDraw(f) {
		t.Error("a regular file is not a terminal")
	}
	if ShouldDraw(nil) {
		t.Error("nil is not a terminal")
	}
}
