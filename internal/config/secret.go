package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/mailoauth/mailoauth/internal/keyring"
	"github.com/mailoauth/mailoauth/internal/paths"
)

// Secret is a reference to a secret, as written in the config file:
//
//	env:VAR       the environment variable VAR
//	file:PATH     the file's content (relative to the config folder; ~/ works)
//	cmd:COMMAND   the standard output of `sh -c COMMAND` (e.g. cmd:pass show mail/app)
//	keyring:NAME  the OS keyring entry with service "mailoauth" and user NAME
//	anything else the literal secret itself (allowed, with a warning)
//
// Resolution is lazy: a command that does not need the secret never runs
// the cmd: or touches the keyring. Neither String, the slog value nor any
// error of Resolve contains the secret.
type Secret struct {
	ref string
	key string // config key path, for messages
	dir string // config folder, anchors relative file: paths
}

// NewSecret makes a reference outside a config file (flags, tests). key
// names it in errors; dir anchors relative file: paths.
func NewSecret(ref, key, dir string) Secret { return Secret{ref: ref, key: key, dir: dir} }

// SecretKind is the scheme of a reference.
type SecretKind string

// The kinds of reference.
const (
	SecretEnv     SecretKind = "env"
	SecretFile    SecretKind = "file"
	SecretCmd     SecretKind = "cmd"
	SecretKeyring SecretKind = "keyring"
	SecretLiteral SecretKind = "literal"
)

// KeyringService is the service name keyring: references are looked up under.
const KeyringService = "mailoauth"

// CmdTimeout bounds a cmd: reference. It is long because the command may
// wait on a GPG pinentry; keyring: calls use internal/keyring's timeout.
var CmdTimeout = 60 * time.Second

// maxSecretSize caps what a file: or cmd: may produce.
const maxSecretSize = 64 << 10

// IsSet reports whether the key was given.
func (s Secret) IsSet() bool { return s.ref != "" }

// Key is the config key the reference came from.
func (s Secret) Key() string { return s.key }

// Kind says how the secret is found.
func (s Secret) Kind() SecretKind {
	scheme, _, ok := strings.Cut(s.ref, ":")
	if ok {
		switch k := SecretKind(scheme); k {
		case SecretEnv, SecretFile, SecretCmd, SecretKeyring:
			return k
		}
	}
	return SecretLiteral
}

// String describes the reference without the secret: "env:VAR",
// "cmd:pass show x", "literal", or "" when unset.
func (s Secret) String() string {
	switch {
	case !s.IsSet():
		return ""
	case s.Kind() == SecretLiteral:
		return "literal"
	}
	return s.ref
}

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps the secret out of JSON and other encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Resolve returns the secret. Errors say which key and reference failed and
// why, never the value (nor a cmd:'s stderr, which might echo it).
func (s Secret) Resolve(ctx context.Context) (string, error) {
	v, err := s.resolve(ctx)
	if err != nil {
		return "", fmt.Errorf("secret %s (%s): %w", s.key, s.String(), err)
	}
	return v, nil
}

func (s Secret) resolve(ctx context.Context) (string, error) {
	if !s.IsSet() {
		return "", errors.New("not set")
	}
	_, arg, _ := strings.Cut(s.ref, ":")
	switch s.Kind() {
	case SecretEnv:
		v, ok := os.LookupEnv(arg)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", arg)
		}
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", arg)
		}
		return v, nil
	case SecretFile:
		p, err := paths.Resolve(s.dir, arg)
		if err != nil {
			return "", err
		}
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("open %s: %w", p, errors.Unwrap(err))
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
		if err != nil {
			return "", fmt.Errorf("read %s: %w", p, errors.Unwrap(err))
		}
		return nonEmpty(b, "file "+p)
	case SecretCmd:
		ctx, cancel := context.WithTimeout(ctx, CmdTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", arg)
		var out limitedBuffer
		cmd.Stdout = &out
		cmd.Stderr = io.Discard // may echo the secret; the user can run the command to see it
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			return "", fmt.Errorf("command timed out after %v", CmdTimeout)
		case ctx.Err() != nil:
			return "", ctx.Err()
		case err != nil:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return "", fmt.Errorf("command failed with exit status %d (its stderr is not shown; run it yourself to see why)", ee.ExitCode())
			}
			return "", fmt.Errorf("run command: %w", err)
		case out.over:
			return "", fmt.Errorf("command printed more than %d bytes", maxSecretSize)
		}
		return nonEmpty(out.Bytes(), "command output")
	case SecretKeyring:
		return keyringGet(ctx, arg)
	}
	return s.ref, nil
}

func nonEmpty(b []byte, what string) (string, error) {
	if len(b) > maxSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes", what, maxSecretSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", what)
	}
	return v, nil
}

type limitedBuffer struct {
	bytes.Buffer
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxSecretSize {
		b.over = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// keyringGet reads the OS keyring through internal/keyring, which bounds
// the call with its own timeout (a D-Bus keyring can hang forever).
func keyringGet(ctx context.Context, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	v, err := keyring.Get(KeyringService, name)
	switch {
	case errors.Is(err, keyring.ErrNotFound):
		return "", fmt.Errorf("no keyring entry for service %q, user %q", KeyringService, name)
	case errors.Is(err, keyring.ErrTimeout):
		return "", fmt.Errorf("the OS keyring did not answer within %v (is a keyring service running?)", keyring.Timeout)
	case err != nil:
		return "", fmt.Errorf("keyring: %w", errors.Unwrap(err))
	case v == "":
		return "", errors.New("keyring entry is empty")
	}
	return v, nil
}

// secret checks a reference at load time: the scheme's argument must be
// there, and a literal earns a warning naming the key (never the value).
func (l *loader) secret(key toml.Key, ref string) Secret {
	s := Secret{ref: ref, key: key.String(), dir: l.dir}
	if ref == "" {
		return s
	}
	_, arg, _ := strings.Cut(ref, ":")
	switch s.Kind() {
	case SecretLiteral:
		msg := "the secret is written in the config file; prefer env:VAR, file:PATH, cmd:COMMAND or keyring:NAME"
		if l.mode&0o077 != 0 {
			msg += fmt.Sprintf(", and the file is open to other users (mode %04o): chmod 600 %s", l.mode.Perm(), l.path)
		}
		l.warnf(key, "%s", msg)
	case SecretEnv, SecretKeyring:
		if strings.TrimSpace(arg) == "" || strings.ContainsAny(arg, " \t\n") {
			l.errorf(key, "%s: needs a name without spaces, e.g. %s:MAILOAUTH_SECRET", s.Kind(), s.Kind())
		}
	case SecretFile, SecretCmd:
		if strings.TrimSpace(arg) == "" {
			l.errorf(key, "%s: needs a %s after the colon", s.Kind(), map[SecretKind]string{SecretFile: "path", SecretCmd: "command"}[s.Kind()])
		}
	}
	return s
}
