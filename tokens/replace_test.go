package tokens

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ReplaceLogin waits for another holder's refresh lease, bounded, and what a
// refresher writes under its lease before the login is replaced with the rest.
func TestReplaceLoginWaitsForLease(t *testing.T) {
	newLogin := map[Kind]string{KindRefresh: "rt-new", AccessKind("imap"): "at-new", KindState: "relogin=false"}
	oldLogin := map[Kind]string{KindRefresh: "rt-old", AccessKind("imap"): "at-old", KindState: "relogin=false"}
	tests := []struct {
		name         string
		holderTTL    time.Duration // the other holder's lease
		releaseAfter time.Duration // when the other holder writes and releases; 0: never (crashed or stuck)
		ctxTimeout   time.Duration // 0: none
		wantElapsed  time.Duration
		wantErr      error
		want         map[Kind]string
	}{
		// A refresher finishing its refresh: the login goes in right after,
		// and the graph token the refresher cached for the old login goes too.
		{name: "refresher releases", holderTTL: time.Minute, releaseAfter: 3 * time.Second,
			wantElapsed: 3 * time.Second, want: newLogin},
		// A crashed holder: its lease expires by its TTL.
		{name: "holder crashed", holderTTL: 20 * time.Second,
			wantElapsed: 20 * time.Second, want: newLogin},
		// A holder stuck for longer than the bound: the login is written
		// without the lease rather than lost.
		{name: "holder stuck", holderTTL: time.Hour,
			wantElapsed: 70 * time.Second, want: newLogin},
		{name: "caller gives up", holderTTL: time.Hour, ctxTimeout: 5 * time.Second,
			wantElapsed: 5 * time.Second, wantErr: context.DeadlineExceeded, want: oldLogin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, err := newStore(t.Context(), newMemBackend(), "mem:", "", &Options{Key: testKey}, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				exp := time.Now().Add(time.Hour)
				if err := SaveLogin(t.Context(), s, "a", "imap", loginToken("rt-old", "at-old", exp)); err != nil {
					t.Fatal(err)
				}
				other, err := s.Acquire(t.Context(), "a", "refresher", tt.holderTTL)
				if err != nil {
					t.Fatal(err)
				}
				if tt.releaseAfter > 0 {
					go func() {
						time.Sleep(tt.releaseAfter)
						mustPut(t, s, other, TokenRecord("a", AccessKind("graph"), loginToken("", "at-old-graph", exp)))
						s.Release(context.Background(), other)
					}()
				}
				ctx := t.Context()
				if tt.ctxTimeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
					defer cancel()
				}
				start := time.Now()
				err = ReplaceLogin(ctx, s, "a", "imap", loginToken("rt-new", "at-new", exp))
				elapsed := time.Since(start)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReplaceLogin: got %v, want %v", err, tt.wantErr)
				}
				// Polling doubles up to 250 ms, so it notices a free lease that late.
				if elapsed < tt.wantElapsed || elapsed > tt.wantElapsed+250*time.Millisecond {
					t.Errorf("ReplaceLogin returned after %v, want %v (+ at most one 250 ms poll)", elapsed, tt.wantElapsed)
				}
				synctest.Wait()
				if diff := cmp.Diff(tt.want, tokenKinds(t, s, "a")); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// ReplaceLogin's Put runs under the lease it took: a refresher that lost
// its lease to the login cannot write, and one that asks during the login
// is refused until the login is stored.
func TestReplaceLoginHoldsLease(t *testing.T) {
	s, err := newStore(t.Context(), newMemBackend(), "mem:", "", &Options{Key: testKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exp := time.Now().Add(time.Hour)
	if err := SaveLogin(t.Context(), s, "a", "imap", loginToken("rt-old", "at-old", exp)); err != nil {
		t.Fatal(err)
	}
	// A Store wrapper that tries, between ReplaceLogin's read and its Put,
	// what a refresher in another process would.
	probe := &probeStore{Store: s}
	if err := ReplaceLogin(t.Context(), probe, "a", "imap", loginToken("rt-new", "at-new", exp)); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(probe.acquireErr, ErrLeaseHeld) {
		t.Errorf("a refresher's Acquire during ReplaceLogin: got %v, want ErrLeaseHeld", probe.acquireErr)
	}
	if probe.leased == nil || probe.leased.Holder == "" {
		t.Errorf("ReplaceLogin's Put had no lease")
	}
	want := map[Kind]string{KindRefresh: "rt-new", AccessKind("imap"): "at-new", KindState: "relogin=false"}
	if diff := cmp.Diff(want, tokenKinds(t, s, "a")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// probeStore records the lease of each Put and, at the first Put, tries to
// take the account's lease as a refresher would.
type probeStore struct {
	Store
	leased     *Lease
	acquireErr error
}

func (p *probeStore) Put(ctx context.Context, lease *Lease, recs ...Record) error {
	p.leased = lease
	_, p.acquireErr = p.Store.Acquire(ctx, recs[0].Account, "refresher", time.Minute)
	return p.Store.Put(ctx, lease, recs...)
}
