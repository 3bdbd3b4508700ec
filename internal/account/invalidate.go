package account

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mailoauth/mailoauth/tokens"
)

// Invalidate drops the cached access token of resource so that the next
// Token call refreshes, when a mail server refused that token (revoked,
// a policy change, a mailbox moved) although it has not expired: without
// this the refused token would be handed out again until its refresh is
// due, an hour of failed logins.
//
// refused is the access token the server refused; when the store already
// holds another one (someone refreshed meanwhile) nothing is dropped from
// the store. "" drops whatever is cached. The refresh token is kept, so
// the next Token is an ordinary refresh, not a new login.
//
// The access record is deleted (a tombstone Put, tokens.Store promise 11)
// under the account's refresh lease, so the check that it still holds the
// refused token and the delete are one step no refresh can slip between;
// the refresh engine then finds no cached token and refreshes. When another
// holder has the lease a refresh is already under way and will store a new
// token, so Invalidate only forgets this process's copy. Other processes
// sharing the store (a `mailoauth serve`) see the record gone at their next
// hand-out (the daemon compares what it hands out with the store).
func (a *Account) Invalidate(ctx context.Context, resource, refused string) error {
	key, err := a.cacheKey(resource)
	if err != nil {
		return err
	}
	// The Source caches the token in memory: a new one reads the store.
	a.mu.Lock()
	delete(a.sources, key)
	a.mu.Unlock()

	st := a.m.store
	name := a.cfg.Name
	holder := strconv.Itoa(os.Getpid()) + "-invalidate-" + crand.Text()
	lease, err := st.Acquire(ctx, name, holder, 30*time.Second)
	if errors.Is(err, tokens.ErrLeaseHeld) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("invalidate the %s token of %s: %w", key, name, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		st.Release(rctx, lease)
	}()
	kind := tokens.AccessKind(key)
	tok, err := tokens.LoadToken(ctx, st, name, kind)
	if errors.Is(err, tokens.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("invalidate the %s token of %s: %w", key, name, err)
	}
	if refused != "" && tok.AccessToken != refused {
		return nil
	}
	if err := st.Put(ctx, lease, tokens.Record{Account: name, Kind: kind}); err != nil {
		return fmt.Errorf("invalidate the %s token of %s: %w", key, name, err)
	}
	a.mu.Lock()
	delete(a.sources, key) // a Token call between the two deletes read the old record
	a.mu.Unlock()
	return nil
}
