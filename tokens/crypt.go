package tokens

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/mailoauth/mailoauth/internal/keyring"
	"github.com/mailoauth/mailoauth/internal/paths"
)

// KeySize is the size of the data-encryption key: AES-256.
const KeySize = 32

// sealVersion prefixes every sealed value so the format can change later.
const sealVersion byte = 1

// keyringService is the service name of the key in the OS keyring.
const keyringService = "mailoauth"

// Meta names inside the store.
const (
	metaSalt     = "argon2id-salt"
	metaKeyCheck = "key-check"
)

// Argon2id parameters: one pass over 64 MiB with 4 lanes, the figures
// golang.org/x/crypto/argon2's IDKey documentation recommends. They are fixed:
// changing them changes every passphrase-derived key.
const (
	argonTime    = 1
	argonMemory  = 64 << 10
	argonThreads = 4
)

// sealer encrypts record values. Additional data binds each value to its
// account and kind, so a value copied to another record fails to open.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func additionalData(account string, kind Kind) []byte {
	// NUL cannot occur in an account name or kind we write, so the encoding
	// is unambiguous ("a"+"b:c" differs from "a:b"+"c").
	return []byte("mailoauth-v1\x00" + account + "\x00" + string(kind))
}

func (s *sealer) seal(account string, kind Kind, plaintext []byte) []byte {
	out := make([]byte, 1, 1+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	return s.aead.Seal(out, nil, plaintext, additionalData(account, kind))
}

func (s *sealer) open(account string, kind Kind, sealed []byte) ([]byte, error) {
	if len(sealed) < 1 || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%s %s: %w (unknown format)", account, kind, ErrDecrypt)
	}
	pt, err := s.aead.Open(nil, nil, sealed[1:], additionalData(account, kind))
	if err != nil {
		// The GCM error says nothing useful and nothing secret; ours says which record.
		return nil, fmt.Errorf("%s %s: %w", account, kind, ErrDecrypt)
	}
	return pt, nil
}

// keyCheckPlain is sealed under the meta pseudo-account so Open can tell a
// wrong key at once instead of at the first Get.
var keyCheckPlain = []byte("mailoauth store key check")

const metaAccount = "\x00meta"

// resolveKey finds the data-encryption key for a store, in this order:
// Options.Key; a passphrase (argon2id, salt kept in the store); the key file;
// the OS keyring; and for a store that has no key yet, a new key put in the
// keyring, or in a new key file (with a warning) when no keyring answers.
func resolveKey(ctx context.Context, b backend, id, keyFile string, opts *Options, log *slog.Logger) ([]byte, error) {
	if opts.Key != nil {
		return opts.Key, nil
	}
	if opts.Passphrase != nil {
		salt, err := b.meta(ctx, metaSalt, nil)
		if errors.Is(err, ErrNotFound) {
			// A store made with another key source has no salt; writing one
			// now would make it look like a passphrase store ever after.
			if _, kerr := b.meta(ctx, metaKeyCheck, nil); kerr == nil {
				return nil, fmt.Errorf("%w: it was created with a key from the OS keyring or a key file, not a passphrase; drop the passphrase, or log in again into a new store", ErrWrongKey)
			}
			fresh := make([]byte, 16)
			rand.Read(fresh)
			salt, err = b.meta(ctx, metaSalt, fresh) // first writer wins
		}
		if err != nil {
			return nil, fmt.Errorf("read the passphrase salt: %w", err)
		}
		pass, err := opts.Passphrase()
		if err != nil {
			return nil, fmt.Errorf("read the store passphrase: %w", err)
		}
		if len(pass) == 0 {
			return nil, errors.New("store passphrase is empty")
		}
		return argon2.IDKey(pass, salt, argonTime, argonMemory, argonThreads, KeySize), nil
	}
	if keyFile != "" {
		key, err := readKeyFile(keyFile)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	user := "store:" + id
	useKeyring := !opts.NoKeyring
	var keyringErr error
	if useKeyring {
		s, err := keyring.Get(keyringService, user)
		if err == nil {
			key, derr := base64.StdEncoding.DecodeString(s)
			if derr != nil || len(key) != KeySize {
				return nil, fmt.Errorf("keyring entry %s/%s is not a %d-byte base64 key", keyringService, user, KeySize)
			}
			return key, nil
		}
		if !errors.Is(err, keyring.ErrNotFound) {
			// No keyring service (or it hung): don't wait for it a second time.
			log.Debug("keyring unavailable", "err", err)
			useKeyring, keyringErr = false, err
		}
	}
	// No key anywhere. A store that already holds data needs its old key.
	if _, err := b.meta(ctx, metaKeyCheck, nil); err == nil {
		if _, serr := b.meta(ctx, metaSalt, nil); serr == nil {
			return nil, fmt.Errorf("%w; give that passphrase", ErrPassphraseRequired)
		}
		where := "the OS keyring"
		switch {
		case opts.NoKeyring:
			where = "the OS keyring (not used)"
		case keyringErr != nil:
			// The key may be in a keyring that is locked or not running.
			where = fmt.Sprintf("the OS keyring, which did not answer (%v)", keyringErr)
		}
		if keyFile != "" {
			where = keyFile + " nor in " + where
		}
		return nil, fmt.Errorf("the store is encrypted but its key is neither in %s; restore the key file, unlock the keyring that holds it, or log in again into a new store", where)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	key := make([]byte, KeySize)
	rand.Read(key)
	if useKeyring {
		enc := base64.StdEncoding.EncodeToString(key)
		if err := keyring.Set(keyringService, user, enc); err == nil {
			// Read back: if another process created the store at the same
			// moment, the keyring holds the key that wins.
			if s, err := keyring.Get(keyringService, user); err == nil && s != enc {
				if k, derr := base64.StdEncoding.DecodeString(s); derr == nil && len(k) == KeySize {
					return k, nil
				}
			}
			return key, nil
		} else {
			log.Debug("cannot store the key in the keyring", "err", err)
		}
	}
	if keyFile == "" {
		return nil, errors.New("no OS keyring and no key file for the store key; give a passphrase or a key file")
	}
	if err := writeKeyFile(keyFile, key); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race: use its key
			return readKeyFile(keyFile)
		}
		return nil, err
	}
	log.Warn("no OS keyring available: the token store key was written to a file; keep it as private as the tokens", "path", keyFile)
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("key file %s does not hold a %d-byte base64 key", path, KeySize)
	}
	return key, nil
}

// writeKeyFile creates path (never overwrites: a lost key is lost tokens)
// with mode 0600, writing to a temporary file first so a crash never leaves
// a half-written key.
func writeKeyFile(path string, key []byte) error {
	if err := paths.PrivateDir(filepath.Dir(path)); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	// Link fails if path exists, unlike Rename: the first writer wins.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}
