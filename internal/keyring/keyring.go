// Package keyring wraps github.com/zalando/go-keyring with a timeout.
//
// The Secret Service backend talks to D-Bus, which can hang for a long time
// when no keyring daemon answers (headless servers, containers, SSH
// sessions). Like the GitHub CLI's internal/keyring, every call here gives up
// after a timeout, so a missing keyring costs seconds at most and callers can
// fall back to a key file.
//
//	key, err := keyring.Get("mailoauth", "tokens:sqlite:/home/me/.local/state/mailoauth/tokens.db")
//	if errors.Is(err, keyring.ErrNotFound) { ... }
package keyring

import (
	"errors"
	"fmt"
	"time"

	zk "github.com/zalando/go-keyring"
)

// ErrNotFound is returned by Get and Delete when the keyring holds no such
// entry; it is the same value as go-keyring's, so errors.Is works with both.
var ErrNotFound = zk.ErrNotFound

// ErrTimeout is returned when the keyring did not answer within Timeout,
// which usually means no keyring service runs.
var ErrTimeout = errors.New("keyring did not answer in time")

// Timeout bounds every call. Three seconds is what gh uses: long enough for
// a desktop keyring to unlock, short enough for a headless fallback.
var Timeout = 3 * time.Second

// Set stores secret under service and user.
func Set(service, user, secret string) error {
	_, err := withTimeout(func() (string, error) { return "", zk.Set(service, user, secret) })
	if err != nil {
		return fmt.Errorf("keyring set %s: %w", service, err)
	}
	return nil
}

// Get returns the secret stored under service and user, or ErrNotFound.
func Get(service, user string) (string, error) {
	s, err := withTimeout(func() (string, error) { return zk.Get(service, user) })
	if err != nil {
		return "", fmt.Errorf("keyring get %s: %w", service, err)
	}
	return s, nil
}

// Delete removes the secret stored under service and user.
func Delete(service, user string) error {
	_, err := withTimeout(func() (string, error) { return "", zk.Delete(service, user) })
	if err != nil {
		return fmt.Errorf("keyring delete %s: %w", service, err)
	}
	return nil
}

// MockInit replaces the OS keyring with an in-memory one, for tests.
func MockInit() { zk.MockInit() }

// MockInitWithError makes every keyring call fail with err, for tests of
// the fallback paths.
func MockInitWithError(err error) { zk.MockInitWithError(err) }

// withTimeout runs f in a goroutine and stops waiting after Timeout. The
// goroutine of a hung call is left behind on purpose: go-keyring offers no way
// to cancel a D-Bus call, and the process keeps working without it.
func withTimeout(f func() (string, error)) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1) // buffered: a late answer must not block the goroutine
	go func() {
		s, err := f()
		ch <- result{s, err}
	}()
	t := time.NewTimer(Timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-t.C:
		return "", ErrTimeout
	}
}
