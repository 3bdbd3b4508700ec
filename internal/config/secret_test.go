package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/keyring"
)

func TestSecretResolve(t *testing.T) {
	dir := t.TempDir()
	keyring.MockInit()
	if err := keyring.Set(KeyringService, "work", "from-keyring"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILOAUTH_TEST_SECRET", "from-env")
	t.Setenv("MAILOAUTH_TEST_EMPTY", "")
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.txt"), []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref     string
		want    string
		wantErr string // fragment; "" = success
		kind    SecretKind
	}{
		{"env:MAILOAUTH_TEST_SECRET", "from-env", "", SecretEnv},
		{"env:MAILOAUTH_TEST_UNSET", "", "environment variable MAILOAUTH_TEST_UNSET is not set", SecretEnv},
		{"env:MAILOAUTH_TEST_EMPTY", "", "is empty", SecretEnv},
		{"file:secret.txt", "from-file", "", SecretFile},
		{"file:" + filepath.Join(dir, "secret.txt"), "from-file", "", SecretFile},
		{"file:missing.txt", "", "missing.txt: no such file or directory", SecretFile},
		{"file:empty.txt", "", "is empty", SecretFile},
		{"cmd:printf 'from-cmd\\n\\n'", "from-cmd", "", SecretCmd},
		{"cmd:echo \"$MAILOAUTH_TEST_SECRET\" >&2; exit 3", "", "exit status 3 (its stderr is not shown", SecretCmd},
		{"cmd:true", "", "command output is empty", SecretCmd},
		{"keyring:work", "from-keyring", "", SecretKeyring},
		{"keyring:home", "", `no keyring entry for service "mailoauth", user "home"`, SecretKeyring},
		{"plain-literal", "plain-literal", "", SecretLiteral},
		{"https://not-a-scheme", "https://not-a-scheme", "", SecretLiteral},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			s := NewSecret(tt.ref, "accounts.a.client_secret", dir)
			if s.Kind() != tt.kind {
				t.Errorf("kind = %q, want %q", s.Kind(), tt.kind)
			}
			got, err := s.Resolve(context.Background())
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Resolve = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve = %q, want error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "secret accounts.a.client_secret (") {
				t.Errorf("error = %q, want it to name the key and contain %q", err, tt.wantErr)
			}
			for _, leak := range []string{"leaked-on-stderr", "from-"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error leaks %q: %v", leak, err)
				}
			}
		})
	}
}

func TestSecretCmdTimeout(t *testing.T) {
	old := CmdTimeout
	CmdTimeout = 100 * time.Millisecond
	t.Cleanup(func() { CmdTimeout = old })
	start := time.Now()
	_, err := NewSecret("cmd:exec sleep 30", "k", "").Resolve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("error = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestSecretCmdCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewSecret("cmd:exec sleep 30", "k", "").Resolve(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("error = %v, want context canceled", err)
	}
}

// TestSecretNeverPrinted: every way a Secret can be shown hides a literal.
func TestSecretNeverPrinted(t *testing.T) {
	s := NewSecret("hunter2", "accounts.a.client_secret", "")
	text, _ := s.MarshalText()
	for _, got := range []string{s.String(), s.LogValue().String(), string(text)} {
		if got != "literal" {
			t.Errorf("shown as %q, want \"literal\"", got)
		}
	}
	if got := NewSecret("env:X", "k", "").String(); got != "env:X" {
		t.Errorf("reference shown as %q", got)
	}
	if NewSecret("", "k", "").IsSet() {
		t.Error("empty secret is set")
	}
}

// TestSecretsLazy: loading a config never runs a cmd: reference.
func TestSecretsLazy(t *testing.T) {
	dir := setup(t)
	marker := filepath.Join(dir, "ran")
	cfg, err := parse(t, dir, "[accounts.a]\nclient_id = \"x\"\nclient_secret = \"cmd:touch "+marker+"; echo s\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("loading the config ran the cmd: reference")
	}
	got, err := cfg.Accounts["a"].ClientSecret.Resolve(context.Background())
	if err != nil || got != "s" {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("Resolve did not run the command")
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("a reference earned warnings: %v", cfg.Warnings)
	}
}
