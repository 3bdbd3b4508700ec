package tokens

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/keyring"
)

// logBuffer captures slog output so tests can check warnings and that no
// secret is ever logged.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func TestKeyFromKeyring(t *testing.T) {
	keyring.MockInit()
	path := filepath.Join(t.TempDir(), "tokens.db")
	log, buf := logBuffer()
	s, err := Open(t.Context(), "sqlite:"+path, &Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, nil, rec("a", KindRefresh, "secret-refresh"))
	s.Close()
	if _, err := os.Stat(path + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file was written although the keyring works: %v", err)
	}
	if strings.Contains(buf.String(), "WARN") {
		t.Errorf("unexpected warning: %s", buf)
	}
	s, err = Open(t.Context(), "sqlite:"+path, nil)
	if err != nil {
		t.Fatalf("reopen with the key from the keyring: %v", err)
	}
	defer s.Close()
	if v := value(t, s, "a", KindRefresh); v != "secret-refresh" {
		t.Errorf("read %q", v)
	}
}

func TestKeyFileFallback(t *testing.T) {
	keyring.MockInitWithError(errors.New("no D-Bus session"))
	t.Cleanup(keyring.MockInit)
	path := filepath.Join(t.TempDir(), "tokens.db")
	log, buf := logBuffer()
	s, err := Open(t.Context(), "sqlite:"+path, &Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, nil, rec("a", KindRefresh, "v"))
	s.Close()
	fi, err := os.Stat(path + ".key")
	if err != nil {
		t.Fatalf("no key file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	keyText, _ := os.ReadFile(path + ".key")
	if n := strings.Count(buf.String(), "level=WARN"); n != 1 || !strings.Contains(buf.String(), path+".key") {
		t.Errorf("want one warning naming the key file, got:\n%s", buf)
	}
	if strings.Contains(buf.String(), strings.TrimSpace(string(keyText))) {
		t.Fatal("the key was logged")
	}
	// Second open: key file read, no new warning.
	log2, buf2 := logBuffer()
	s, err = Open(t.Context(), "sqlite:"+path, &Options{Logger: log2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := value(t, s, "a", KindRefresh); v != "v" {
		t.Errorf("read %q", v)
	}
	if strings.Contains(buf2.String(), "WARN") {
		t.Errorf("warning repeated: %s", buf2)
	}
}

// TestKeyMissingForExistingStore: a store whose key is gone is never given a
// new key (its records would be lost), and the error says where the key was
// looked for, including a keyring that did not answer (locked, not running).
func TestKeyMissingForExistingStore(t *testing.T) {
	tests := []struct {
		name      string
		keyring   error // nil: a working keyring without the entry
		noKeyring bool
		want      string
	}{
		{"keyring without the key", nil, false, "key is neither in KEYFILE nor in the OS keyring; restore the key file"},
		{"keyring not answering", keyring.ErrTimeout, false, "nor in the OS keyring, which did not answer (keyring get mailoauth: keyring did not answer in time)"},
		{"keyring not used", nil, true, "nor in the OS keyring (not used)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyring.MockInitWithError(errors.New("no D-Bus session"))
			t.Cleanup(keyring.MockInit)
			path := filepath.Join(t.TempDir(), "tokens.db")
			s, err := Open(t.Context(), "sqlite:"+path, &Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			os.Remove(path + ".key")
			if tt.keyring != nil {
				keyring.MockInitWithError(tt.keyring)
			} else {
				keyring.MockInit()
			}
			_, err = Open(t.Context(), "sqlite:"+path, &Options{NoKeyring: tt.noKeyring, Logger: slog.New(slog.DiscardHandler)})
			want := strings.ReplaceAll(tt.want, "KEYFILE", path+".key")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("open without its key: got %v, want an error containing %q", err, want)
			}
			if _, serr := os.Stat(path + ".key"); serr == nil {
				t.Error("a new key file was made for a store that already has data")
			}
		})
	}
}

func TestPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	pass := func(p string) *Options {
		return &Options{Passphrase: func() ([]byte, error) { return []byte(p), nil }}
	}
	s, err := Open(t.Context(), "sqlite:"+path, pass("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, nil, rec("a", KindRefresh, "v"))
	s.Close()
	if _, err := Open(t.Context(), "sqlite:"+path, pass("wrong horse")); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: got %v, want ErrWrongKey", err)
	}
	s, err = Open(t.Context(), "sqlite:"+path, pass("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := value(t, s, "a", KindRefresh); v != "v" {
		t.Errorf("read %q", v)
	}
}

// TestPassphraseKeySources: a store opened with the wrong key source says
// which one it needs, and opening a keyring or key-file store with a
// passphrase neither asks for it nor turns the store into a passphrase one.
func TestPassphraseKeySources(t *testing.T) {
	keyring.MockInitWithError(errors.New("no D-Bus session"))
	t.Cleanup(keyring.MockInit)
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	asked := 0
	pass := func(p string) *Options {
		return &Options{Logger: quiet, Passphrase: func() ([]byte, error) { asked++; return []byte(p), nil }}
	}
	open := func(name string, o *Options) error {
		s, err := Open(t.Context(), "sqlite:"+filepath.Join(dir, name), o)
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := open("pass.db", pass("correct horse")); err != nil {
		t.Fatal(err)
	}
	if err := open("file.db", &Options{Logger: quiet}); err != nil { // key file
		t.Fatal(err)
	}
	tests := []struct {
		name, store string
		opts        *Options
		wantWrong   bool // errors.Is ErrWrongKey
		want        string
		wantAsked   int
	}{
		{"wrong passphrase", "pass.db", pass("wrong horse"), true, "wrong passphrase", 1},
		{"passphrase store without one", "pass.db", &Options{Logger: quiet}, false, "derived from a passphrase; give that passphrase", 0},
		{"passphrase store with a key", "pass.db", &Options{Logger: quiet, Key: testKey}, true, "created with a passphrase", 0},
		{"key-file store with a passphrase", "file.db", pass("correct horse"), true, "not a passphrase", 0},
		{"key-file store with another key", "file.db", &Options{Logger: quiet, Key: testKey}, true, "store key does not match this store", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked = 0
			err := open(tt.store, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrWrongKey) != tt.wantWrong {
				t.Fatalf("got %v, want an error containing %q (ErrWrongKey: %v)", err, tt.want, tt.wantWrong)
			}
			if want := tt.name == "passphrase store without one"; errors.Is(err, ErrPassphraseRequired) != want {
				t.Errorf("errors.Is(%v, ErrPassphraseRequired) = %v, want %v", err, !want, want)
			}
			if strings.Contains(err.Error(), "horse") {
				t.Errorf("the passphrase is in the error: %v", err)
			}
			if asked != tt.wantAsked {
				t.Errorf("passphrase asked %d times, want %d", asked, tt.wantAsked)
			}
		})
	}
	// The passphrase tried on the key-file store left it as it was.
	if err := open("file.db", &Options{Logger: quiet}); err != nil {
		t.Errorf("key-file store after a passphrase attempt: %v", err)
	}
	if err := open("pass.db", pass("correct horse")); err != nil {
		t.Errorf("passphrase store with its passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pass.db.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file was made for a passphrase store: %v", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sqlite:/var/lib/x.db", "sqlite:/var/lib/x.db"},
		{"postgres://app:s3cret@db.example:5432/mail?sslmode=verify-full", "postgres://app:xxxxx@db.example:5432/mail?sslmode=verify-full"},
		{"postgresql://app@db/mail", "postgresql://app@db/mail"},
		{"postgres://db/mail?password=s3cret&user=app", "postgres://db/mail?password=xxxxx&user=app"},
		{"postgres://a:b@[::1:bad", "postgres://(unparseable)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := Redact(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if strings.Contains(got, "s3cret") {
				t.Error("password kept")
			}
		})
	}
}

func TestOpenErrorsHidePassword(t *testing.T) {
	_, err := Open(t.Context(), "postgres://app:s3cret@127.0.0.1:1/x?connect_timeout=1", &Options{Key: testKey})
	if err == nil {
		t.Fatal("open of a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error shows the password: %v", err)
	}
	for _, u := range []string{"nope", "ftp://x", "sqlite:"} {
		if _, err := Open(t.Context(), u, nil); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name, state, xdg, want string
	}{
		{"override", "/tmp/st", "/x", "/tmp/st"},
		{"xdg", "", "/x", "/x/mailoauth"},
		{"home", "", "", "/home/u/.local/state/mailoauth"},
		{"relative xdg ignored", "", "rel", "/home/u/.local/state/mailoauth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MAILOAUTH_STATE_DIR", tt.state)
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			t.Setenv("HOME", "/home/u")
			got, err := DefaultDir()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenLogsURLWithoutPassword(t *testing.T) {
	log, buf := logBuffer()
	s, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "t.db"), &Options{Key: testKey, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !strings.Contains(buf.String(), "store=sqlite:") {
		t.Errorf("log does not name the store: %s", buf)
	}
	if got := fmt.Sprint(s); !strings.HasPrefix(got, "sqlite:/") {
		t.Errorf("store prints as %q, want its URL", got)
	}
}
