package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/config"
)

func TestGlobalsAccount(t *testing.T) {
	t.Setenv("MAILOAUTH_STATE_DIR", t.TempDir())
	dir := t.TempDir()
	file := filepath.Join(dir, "config.toml")
	doc := "[accounts.work]\nclient_id = \"x\"\nclient_secret = \"literal\"\n[accounts.home]\nclient_id = \"y\"\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	g := &Globals{ConfigPath: file, Out: &bytes.Buffer{}, ErrOut: &errOut}

	a, err := g.Account("work")
	if err != nil || a.ClientID != "x" {
		t.Fatalf("Account(work) = %v, %v", a, err)
	}
	// Loaded once: a second lookup neither re-reads nor re-warns.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Account("home"); err != nil {
		t.Fatalf("Account(home) after the first load: %v", err)
	}
	if n := strings.Count(errOut.String(), "warning:"); n != 1 {
		t.Errorf("warnings printed %d times, want once:\n%s", n, errOut.String())
	}

	_, err = g.Account("wrok")
	if ExitCode(err) != ExitConfig || !errors.Is(err, config.ErrNoAccount) || !strings.Contains(err.Error(), "known accounts: home, work") {
		t.Errorf("Account(wrok) = %v (exit %d), want ExitConfig listing the accounts", err, ExitCode(err))
	}
	if _, err := g.Account(""); ExitCode(err) != ExitUsage {
		t.Errorf("Account(\"\") exit code = %d, want ExitUsage", ExitCode(err))
	}

	missing := &Globals{ConfigPath: filepath.Join(dir, "none.toml"), ErrOut: &bytes.Buffer{}}
	if _, err := missing.Config(); ExitCode(err) != ExitConfig || !errors.Is(err, config.ErrNotFound) {
		t.Errorf("missing config: %v (exit %d)", err, ExitCode(err))
	}
}
