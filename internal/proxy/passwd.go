package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// ErrBadPassword is a wrong local password, or an account with none set.
var ErrBadPassword = errors.New("wrong password")

// ErrNoPassword is an account without a local password (`mailoauth proxy
// passwd` was never run for it). It matches ErrBadPassword too, so the
// client hears the same failure after the same time; only the proxy's log
// tells the two apart, so the user learns which command fixes it.
var ErrNoPassword = fmt.Errorf("no proxy password set: %w", ErrBadPassword)

// PasswordFileName is the file in the state directory that holds the local
// passwords' hashes.
const PasswordFileName = "proxy-passwords.json"

// argon2id parameters: RFC 9106 §4's second recommended option lowered to
// OWASP's 19 MiB, 2 passes, so a login costs tens of milliseconds and a
// burst of logins cannot exhaust memory; verified logins are then cached
// (see PasswordFile) so a mail client reconnecting every minute pays once.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// PasswordFile keeps the proxy's local passwords as argon2id hashes (PHC
// string format) in one JSON file, mode 0600, in the state directory.
//
// It is a file of its own rather than a record kind in the token store so
// that nothing which deletes or rewrites tokens (logout, a refused refresh,
// a store re-key) can touch the passwords, and nothing here can touch a
// token: a wrong local password can never cost the user a login. The
// hashes need no encryption key either (they are not bearer secrets), so
// `proxy passwd` works without unlocking the store.
//
// It is safe for concurrent use and re-reads the file when it changes, so
// `mailoauth proxy passwd` takes effect on a running proxy.
type PasswordFile struct {
	path string

	mu     sync.Mutex
	stamp  fileStamp
	hashes map[string]string
	// verified caches, per account, HMAC(key, password) of the last
	// password that verified against the current hash, so repeated logins
	// cost a constant-time compare rather than an argon2id run. The key is
	// random per process; the cache never leaves memory.
	key      [32]byte
	verified map[string]verifiedEntry
}

// hashSlots bounds concurrent argon2id runs (19 MiB each) process-wide, so
// thousands of connections sending passwords at once queue for CPU instead
// of allocating gigabytes.
var hashSlots = make(chan struct{}, max(2, runtime.NumCPU()))

// slowChecks counts argon2id runs (tests check which logins pay one).
var slowChecks atomic.Int64

// slowCheck runs checkHash in one of the hashSlots.
func slowCheck(phc, password string) (bool, error) {
	slowChecks.Add(1)
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return checkHash(phc, password)
}

type verifiedEntry struct {
	hash string
	mac  [32]byte
}

type fileStamp struct {
	mod  time.Time
	size int64
}

type passwordDoc struct {
	Version  int               `json:"version"`
	Accounts map[string]string `json:"accounts"`
}

// dummyHash is verified against for unknown users and accounts without a
// password, so a refusal takes as long either way.
var dummyHash = sync.OnceValue(func() string {
	return hashPassword("mailoauth-no-such-account", make([]byte, argonSaltLen))
})

// OpenPasswordFile returns the password file at path (it need not exist).
func OpenPasswordFile(path string) *PasswordFile {
	f := &PasswordFile{path: path, hashes: map[string]string{}, verified: map[string]verifiedEntry{}}
	rand.Read(f.key[:])
	return f
}

// Path is the file's path.
func (f *PasswordFile) Path() string { return f.path }

// load re-reads the file when its size or time changed. Callers hold mu.
func (f *PasswordFile) load() error {
	st, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		f.hashes, f.stamp = map[string]string{}, fileStamp{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("proxy passwords: %w", err)
	}
	stamp := fileStamp{st.ModTime(), st.Size()}
	if stamp == f.stamp && f.hashes != nil {
		return nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("proxy passwords: %w", err)
	}
	var doc passwordDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("proxy passwords %s: %w", f.path, err)
	}
	if doc.Accounts == nil {
		doc.Accounts = map[string]string{}
	}
	f.hashes, f.stamp = doc.Accounts, stamp
	return nil
}

// Has reports whether account has a local password.
func (f *PasswordFile) Has(account string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.load(); err != nil {
		return false, err
	}
	_, ok := f.hashes[account]
	return ok, nil
}

// Set stores a new hash of password for account, replacing the file
// atomically (write to a temporary file, fsync, rename) with mode 0600.
func (f *PasswordFile) Set(account, password string) error {
	if password == "" {
		return errors.New("the password is empty")
	}
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	h := hashPassword(password, salt)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stamp = fileStamp{} // force a re-read under the lock
	if err := f.load(); err != nil {
		return err
	}
	doc := passwordDoc{Version: 1, Accounts: map[string]string{}}
	for k, v := range f.hashes {
		doc.Accounts[k] = v
	}
	doc.Accounts[account] = h
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("proxy passwords: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".proxy-passwords-*")
	if err != nil {
		return fmt.Errorf("proxy passwords: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("proxy passwords: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("proxy passwords: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("proxy passwords: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("proxy passwords: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("proxy passwords: %w", err)
	}
	f.hashes = doc.Accounts
	f.stamp = fileStamp{}
	delete(f.verified, account)
	return nil
}

// Verify checks password for account in constant time (argon2id, then
// subtle.ConstantTimeCompare). The password that verified last is
// remembered (as an HMAC), so it is accepted again without argon2id; any
// other password, for a known account or not, pays the full argon2id run,
// so how long a refusal takes says nothing about the account or the cache.
func (f *PasswordFile) Verify(account, password string) error {
	f.mu.Lock()
	if err := f.load(); err != nil {
		f.mu.Unlock()
		return err
	}
	h, ok := f.hashes[account]
	mac := f.mac(account, password)
	v, hit := f.verified[account]
	cached := ok && hit && v.hash == h && subtle.ConstantTimeCompare(v.mac[:], mac[:]) == 1
	f.mu.Unlock()
	if cached {
		return nil
	}
	if !ok {
		slowCheck(dummyHash(), password)
		return ErrNoPassword
	}
	good, err := slowCheck(h, password)
	if err != nil {
		return fmt.Errorf("proxy password of %s: %w", account, err)
	}
	if !good {
		return ErrBadPassword
	}
	f.mu.Lock()
	if f.hashes[account] == h {
		f.verified[account] = verifiedEntry{hash: h, mac: mac}
	}
	f.mu.Unlock()
	return nil
}

func (f *PasswordFile) mac(account, password string) [32]byte {
	m := hmac.New(sha256.New, f.key[:])
	m.Write([]byte(account))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

var b64 = base64.RawStdEncoding

func hashPassword(password string, salt []byte) string {
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkHash verifies password against a PHC argon2id string.
func checkHash(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errors.New("unsupported argon2 version")
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, errors.New("bad argon2id parameters")
	}
	if m < 8 || m > 1<<21 || t < 1 || t > 16 || p < 1 {
		return false, errors.New("argon2id parameters out of range")
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errors.New("bad argon2id salt")
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, errors.New("bad argon2id hash")
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
